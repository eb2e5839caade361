"""IVR call flows: versioned documents of typed nodes joined by named exits.

* :mod:`kefu.tenants.ivr.flow` — the document (parsing with precise errors,
  the node types and their exits) and its validation before publishing;
* :mod:`kefu.tenants.ivr.machine` — one caller's walk as a state machine
  (actions out: say, ask for keys, look up, check hours; events in), the rules
  a live call and the simulator share;
* :mod:`kefu.tenants.ivr.simulate` — walking a flow without media, for the
  ``kefu ivr simulate`` command, the API and the portal;
* :mod:`kefu.tenants.ivr.store` / :mod:`kefu.tenants.ivr.api` — drafts,
  versions, rollback, lookup addresses and their routes;
* :mod:`kefu.tenants.ivr.vxml` — the VoiceXML subset import;
* :mod:`kefu.tenants.ivr.schema` — the published JSON Schema.

docs/ivr.md describes the document, each node type and every validation code.
"""
