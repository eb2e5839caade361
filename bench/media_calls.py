"""What a bridged, recorded Opus call costs the media server, and what it does to the audio.

Starts a media server in one process and the calls' endpoints in others:

* server: the media plane (``kefu.webrtc.media.MediaPlane``: ``answer_leg``,
  ``bridge``, ``end_call``, each party recorded to Ogg Opus) or, with
  ``--harness local`` (and always with ``--no-record``), a two-line bridge
  of its own: ``Leg`` objects with ``caller.sinks = (caller's
  OggOpusRecorder, agent.outbound)`` and the reverse.  It answers offers over
  a JSON-lines TCP socket and reports its own CPU time.
* clients (``--client-processes``, default 1): 2 x N aiortc peers, a caller
  and an agent per call, each offering like any aiortc peer, connecting
  (ICE, DTLS-SRTP) and then sending one real Opus packet every 20 ms (a
  440 Hz tone, encoded once at start-up; the peers send at phases spread
  over the 20 ms, as independent phones would).  Each packet carries, in
  Opus padding (RFC 6716 section 3.2.5: decoders ignore it, the server
  cannot tell), the sender's id, a counter and its send time on the
  machine's monotonic clock.  The far peer checks each payload arrives byte
  for byte and notes its arrival time.  The clients use the same RTP-level
  packet path as the server (``kefu.webrtc.fastpath``) so that they cost
  little: the box has two cores and everything shares them.

Figures, over ``--seconds`` after ``--warmup`` seconds of traffic:

* server CPU: the server process's CPU time / wall time, per call;
* frame loss: packets sent in the window that never reached the far peer;
* one-way latency: far peer's arrival time - sender's send time (both the
  same CLOCK_MONOTONIC), p50 / p99 / max.  It includes the clients' own
  send and receive paths and the kernel's loopback, so it bounds what the
  server adds from above.

The last line printed is ``calls_per_core=<x>`` (1 / the server's share of a
core per call).  Target: at least 100, with under 0.1 % loss and at most
20 ms added latency.

Run: ``.venv/bin/python bench/media_calls.py --calls 100 [--seconds 20] [--no-record]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

FRAME_S = 0.020
SAMPLES_PER_FRAME = 960
TRAILER = struct.Struct("!IIQ")  # sender id, counter, send time (ns, CLOCK_MONOTONIC)
PHASES = 10  # send groups spread over each 20 ms
SETUP_CONCURRENCY = 8


# --------------------------------------------------------------------------- payloads


def encoded_tone(seconds: float = 1.0, frequency: float = 440.0) -> list[bytes]:
    """Real Opus packets (20 ms, mono, 32 kbit/s) of a sine tone, single-frame (code 0)."""
    import av
    import numpy as np

    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48_000, "mono", "s16", 32_000
    encoder.options = {"application": "voip", "frame_duration": "20"}
    encoder.open()
    t = np.arange(int(48_000 * seconds)) / 48_000
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    packets = []
    for i in range(len(pcm) // SAMPLES_PER_FRAME):
        frame = av.AudioFrame.from_ndarray(
            pcm[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = 48_000, i * SAMPLES_PER_FRAME, Fraction(1, 48_000)
        packets += [bytes(p) for p in encoder.encode(frame)]
    return [p for p in packets if p and p[0] & 0x03 == 0]


def with_trailer(packet: bytes, trailer: bytes) -> bytes:
    """The same Opus frame as a code-3 packet (one CBR frame) whose padding is ``trailer``."""
    return bytes(((packet[0] & 0xFC) | 0x03, 0x41, len(trailer))) + packet[1:] + trailer


# --------------------------------------------------------------------------- control channel


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: dict[str, Any]) -> dict[str, Any]:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise ConnectionError("the media server closed the control connection")
    reply: dict[str, Any] = json.loads(line)
    if "error" in reply:
        raise RuntimeError(f"media server: {reply['error']}")
    return reply


# --------------------------------------------------------------------------- server


class LocalBridge:
    """caller <-> agent exactly as the media plane wires a two-party call: forwarding + one recorder per party."""

    def __init__(self, recordings: Path | None) -> None:
        self.recordings = recordings
        self.legs: dict[tuple[int, str], Any] = {}
        self.recorders: list[Any] = []

    async def answer(self, call: int, party: str, offer: str) -> str:
        from aiortc import RTCConfiguration

        from kefu.webrtc.leg import Leg

        leg = Leg(party=party, configuration=RTCConfiguration(iceServers=[]), on_closed=lambda leg: None)
        self.legs[(call, party)] = leg
        return await leg.answer(offer, timeout_s=30)

    async def bridge(self, call: int) -> None:
        from kefu.webrtc.recorder import OggOpusRecorder

        caller, agent = self.legs[(call, "caller")], self.legs[(call, "agent")]
        for leg, other in ((caller, agent), (agent, caller)):
            sinks: list[Any] = [other.outbound]
            if self.recordings is not None:
                recorder = OggOpusRecorder(self.recordings / str(call) / f"{leg.party}.ogg")
                self.recorders.append(recorder)
                sinks.insert(0, recorder)
            leg.sinks = tuple(sinks)

    async def end(self, call: int) -> None:
        for party in ("caller", "agent"):
            leg = self.legs.pop((call, party), None)
            if leg is not None:
                await leg.close()

    def legs_now(self) -> list[Any]:
        return list(self.legs.values())

    async def stop(self) -> None:
        for recorder in self.recorders:
            recorder.close()


class MediaPlaneBridge:
    """The real thing: kefu.webrtc.media.MediaPlane, calls in one tenant."""

    def __init__(self, data_dir: Path) -> None:
        from kefu.platform.settings import load_settings
        from kefu.webrtc.media import MediaPlane

        self.media = MediaPlane(load_settings({"KEFU_DATA_DIR": str(data_dir), "KEFU_MEDIA_ALLOW_LOOPBACK": "1"}))
        self.tenant_id = uuid.uuid4()
        self.call_ids: dict[int, uuid.UUID] = {}

    async def start(self) -> None:
        await self.media.start()

    def _call_id(self, call: int) -> uuid.UUID:
        return self.call_ids.setdefault(call, uuid.uuid4())

    async def answer(self, call: int, party: str, offer: str) -> str:
        answer: str = await self.media.answer_leg(
            tenant_id=self.tenant_id, call_id=self._call_id(call), party=party, offer_sdp=offer  # type: ignore[arg-type]
        )
        return answer

    async def bridge(self, call: int) -> None:
        await self.media.bridge(tenant_id=self.tenant_id, call_id=self._call_id(call))

    async def end(self, call: int) -> None:
        await self.media.end_call(tenant_id=self.tenant_id, call_id=self._call_id(call))

    def legs_now(self) -> list[Any]:
        return [leg for bridge in self.media._bridges.values() for leg in bridge.legs.values()]

    async def stop(self) -> None:
        await self.media.stop()


class LoopLag:
    """How late a 10 ms timer fires: how long the event loop was busy or the process was not scheduled."""

    INTERVAL = 0.010

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._expected = 0.0

    def start(self) -> None:
        self._expected = time.monotonic() + self.INTERVAL
        asyncio.get_running_loop().call_later(self.INTERVAL, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self.lags.append(now - self._expected)
        self._expected = now + self.INTERVAL
        asyncio.get_running_loop().call_later(self.INTERVAL, self._tick)

    def summary(self) -> list[float]:
        """[p50, p99, max] in ms, since the last summary."""
        lags, self.lags = self.lags, []
        return [percentile(lags, 50) * 1000, percentile(lags, 99) * 1000, max(lags, default=0.0) * 1000]


class GcPauses:
    """How long the server's event loop stood still for Python's cyclic garbage collector, per generation."""

    def __init__(self) -> None:
        import gc

        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def summary(self) -> dict[str, list[float]]:
        summary = {str(g): [len(p), sum(p) * 1000, max(p, default=0.0) * 1000] for g, p in self.pauses.items()}
        for pauses in self.pauses.values():
            pauses.clear()
        return summary


def server_process(port_pipe: Any, harness: str, record: bool, loop_name: str) -> None:
    quiet_logs()
    if loop_name == "uvloop":
        from kefu.webrtc.fastpath import install_event_loop_policy

        install_event_loop_policy()
    asyncio.run(serve(port_pipe, harness, record))


async def serve(port_pipe: Any, harness: str, record: bool) -> None:
    from kefu.webrtc.ice import allow_loopback_host_candidates
    from kefu.webrtc.passthrough import check_aiortc_internals

    check_aiortc_internals()
    allow_loopback_host_candidates()
    pauses = GcPauses()
    lag = LoopLag()
    lag.start()
    data_dir = Path(tempfile.mkdtemp(prefix="kefu-media-bench-"))
    bridge: LocalBridge | MediaPlaneBridge
    if harness == "media-plane":
        bridge = MediaPlaneBridge(data_dir)
        await bridge.start()
    else:
        bridge = LocalBridge(data_dir / "recordings" if record else None)
    done = asyncio.Event()
    connections: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        while not done.is_set() and (line := await reader.readline()):
            message = json.loads(line)
            op = message["op"]
            reply: dict[str, Any] = {}
            try:
                if op == "answer":
                    reply["sdp"] = await bridge.answer(message["call"], message["party"], message["sdp"])
                elif op == "bridge":
                    await bridge.bridge(message["call"])
                elif op == "end":
                    await bridge.end(message["call"])
                elif op == "cpu":
                    times = os.times()
                    reply.update(cpu=time.process_time(), wall=time.monotonic(), user=times.user, system=times.system)
                elif op == "stats":
                    legs = bridge.legs_now()
                    reply.update(
                        legs=len(legs),
                        connected=sum(leg.connection_state == "connected" for leg in legs),
                        sent=sum(leg.outbound.sent for leg in legs),
                        dropped=sum(leg.outbound.dropped for leg in legs),
                        srtp_failures=sum(leg.session.srtp_failures for leg in legs if leg.session),
                        sender_reports=sum(leg.session.reports_sent for leg in legs if leg.session),
                        threads=len(__import__("threading").enumerate()),
                        loop=type(asyncio.get_running_loop()).__module__,
                        pid=os.getpid(),
                        gc=pauses.summary(),
                        lag=lag.summary(),
                    )
                elif op == "quit":
                    done.set()
            except Exception as exc:  # reported to the client, the bench fails loudly there
                reply = {"error": f"{op}: {exc!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        connections.discard(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_pipe.send(server.sockets[0].getsockname()[1])
    await done.wait()
    server.close()
    for writer in list(connections):
        writer.close()
    await server.wait_closed()
    await bridge.stop()


# --------------------------------------------------------------------------- clients


@dataclass
class Peer:
    id: int
    call: int
    party: str
    pc: Any = None
    session: Any = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    sequence: int = 0
    timestamp: int = 0
    counter: int = 0
    # What this peer sent in the window, and what it heard from its far end.
    sent_in_window: int = 0
    heard: set[int] = field(default_factory=set)
    mismatched: int = 0


class Clients:
    def __init__(self, port: int | None, calls: range, frames: list[bytes]) -> None:
        self.port = port
        self.calls = calls
        self.frames = frames
        self.peers: list[Peer] = []
        self.window = (float("inf"), float("inf"))  # send times (monotonic s) that count
        self.latencies_ms: list[float] = []
        self.sending = False

    async def connect(self) -> None:
        from kefu.webrtc.ice import allow_loopback_host_candidates

        allow_loopback_host_candidates()
        semaphore = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def one_call(call: int) -> None:
            async with semaphore:
                if self.port is None:
                    await self._direct(self._peer(call, "caller"), self._peer(call, "agent"))
                    return
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    pair = [self._peer(call, "caller"), self._peer(call, "agent")]
                    for peer in pair:
                        await self._offer(peer, reader, writer)
                    await asyncio.wait_for(asyncio.gather(*(p.connected.wait() for p in pair)), 60)
                    await request(reader, writer, {"op": "bridge", "call": call})
                finally:
                    writer.close()

        await asyncio.gather(*(one_call(call) for call in self.calls))

    async def _direct(self, caller: Peer, agent: Peer) -> None:
        """The baseline: caller and agent peers connected to each other, no media server between them."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        from kefu.webrtc.fastpath import RtpSession

        for peer in (caller, agent):
            peer.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            transceiver = peer.pc.addTransceiver("audio", direction="sendrecv")
            far_id = peer.id ^ 1
            peer.session = RtpSession(transceiver, on_rtp=lambda *packet, peer=peer, far_id=far_id: self._heard(peer, far_id, packet[5]))
            peer.session.on_started = peer.connected.set
        await caller.pc.setLocalDescription(await caller.pc.createOffer())
        await agent.pc.setRemoteDescription(caller.pc.localDescription)
        await agent.pc.setLocalDescription(await agent.pc.createAnswer())
        await caller.pc.setRemoteDescription(RTCSessionDescription(sdp=agent.pc.localDescription.sdp, type="answer"))
        await asyncio.wait_for(asyncio.gather(caller.connected.wait(), agent.connected.wait()), 60)

    def _peer(self, call: int, party: str) -> Peer:
        peer = Peer(id=call * 2 + (party == "agent"), call=call, party=party)
        self.peers.append(peer)
        return peer

    async def _offer(self, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        from kefu.webrtc.fastpath import RtpSession

        peer.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        transceiver = peer.pc.addTransceiver("audio", direction="sendrecv")
        far_id = peer.id ^ 1
        peer.session = RtpSession(transceiver, on_rtp=lambda *packet: self._heard(peer, far_id, packet[5]))
        peer.session.on_started = peer.connected.set
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        reply = await request(
            reader, writer, {"op": "answer", "call": peer.call, "party": peer.party, "sdp": peer.pc.localDescription.sdp}
        )
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))

    def _heard(self, peer: Peer, far_id: int, payload: bytes) -> None:
        now = time.monotonic_ns()
        if len(payload) < 3 + TRAILER.size:
            peer.mismatched += 1
            return
        sender, counter, sent_ns = TRAILER.unpack_from(payload, len(payload) - TRAILER.size)
        expected = with_trailer(self.frames[counter % len(self.frames)], TRAILER.pack(far_id, counter, sent_ns))
        if sender != far_id or payload != expected:
            peer.mismatched += 1
            return
        start, end = self.window
        if start * 1e9 <= sent_ns < end * 1e9 and counter not in peer.heard:
            peer.heard.add(counter)
            self.latencies_ms.append((now - sent_ns) / 1e6)

    async def send(self) -> None:
        """One packet per peer every 20 ms, the peers split into PHASES groups 2 ms apart."""
        self.sending = True
        groups = [self.peers[i::PHASES] for i in range(PHASES)]
        frames = self.frames
        next_at = time.monotonic()
        slot = 0
        while self.sending:
            for peer in groups[slot % PHASES]:
                now_ns = time.monotonic_ns()
                payload = with_trailer(frames[peer.counter % len(frames)], TRAILER.pack(peer.id, peer.counter, now_ns))
                if peer.session.send_rtp(payload, sequence=peer.sequence, timestamp=peer.timestamp):
                    start, end = self.window
                    if start * 1e9 <= now_ns < end * 1e9:
                        peer.sent_in_window += 1
                peer.counter += 1
                peer.sequence = (peer.sequence + 1) & 0xFFFF
                peer.timestamp += SAMPLES_PER_FRAME
            slot += 1
            next_at += FRAME_S / PHASES
            delay = next_at - time.monotonic()
            if delay < -0.2:  # stalled: skip ahead rather than burst
                next_at = time.monotonic()
            await asyncio.sleep(max(delay, 0))  # pacing media, not waiting for work

    async def close(self) -> None:
        if self.port is not None:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            for call in self.calls:
                await request(reader, writer, {"op": "end", "call": call})
            writer.close()
        await asyncio.gather(*(peer.pc.close() for peer in self.peers))


def client_process(conn: Any, port: int | None, first: int, count: int, loop_name: str) -> None:
    quiet_logs()
    if loop_name == "uvloop":
        from kefu.webrtc.fastpath import install_event_loop_policy

        install_event_loop_policy()
    asyncio.run(run_clients(conn, port, range(first, first + count)))


async def run_clients(conn: Any, port: int | None, calls: range) -> None:
    loop = asyncio.get_running_loop()
    clients = Clients(port, calls, encoded_tone())
    started = time.monotonic()
    await clients.connect()
    sender = asyncio.ensure_future(clients.send())
    conn.send({"ready": True, "setup_s": time.monotonic() - started})
    command = await loop.run_in_executor(None, conn.recv)
    clients.window = (command["start"], command["end"])
    cpu = {}
    lag = LoopLag()
    await asyncio.sleep(max(0.0, command["start"] - time.monotonic()))
    cpu["start"] = time.process_time()
    lag.start()
    await asyncio.sleep(max(0.0, command["end"] - time.monotonic()))
    cpu["end"] = time.process_time()
    lags = lag.summary()
    await asyncio.sleep(0.5)  # packets sent at the end of the window are in flight
    clients.sending = False
    await sender
    await asyncio.sleep(0.2)
    conn.send(
        {
            "sent": sum(p.sent_in_window for p in clients.peers),
            "heard": sum(len(p.heard) for p in clients.peers),
            "mismatched": sum(p.mismatched for p in clients.peers),
            "latencies_ms": clients.latencies_ms,
            "cpu_s": cpu["end"] - cpu["start"],
            "lag": lags,
        }
    )
    await clients.close()


# --------------------------------------------------------------------------- controller


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING)
    for name in ("aiortc", "aioice", "kefu"):
        logging.getLogger(name).setLevel(logging.WARNING)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def machine_busy() -> float:
    """CPU seconds all processes on the machine have used (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def server_request(port: int, message: dict[str, Any]) -> dict[str, Any]:
    async def ask() -> dict[str, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await request(reader, writer, message)
        finally:
            writer.close()

    return asyncio.run(ask())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="traffic before the window")
    parser.add_argument("--no-record", action="store_true", help="forward only (implies --harness local)")
    parser.add_argument("--harness", choices=("media-plane", "local"), default="media-plane")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="the server's event loop")
    parser.add_argument("--direct", action="store_true", help="baseline: the same peers connected to each other, no server")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the server over the window into FILE (collapsed stacks)")
    args = parser.parse_args()
    harness = "local" if args.no_record else args.harness

    context = multiprocessing.get_context("spawn")
    server = None
    port: int | None = None
    if not args.direct:
        port_receiver, port_sender = context.Pipe(duplex=False)
        server = context.Process(target=server_process, args=(port_sender, harness, not args.no_record, args.loop))
        server.start()
        port = port_receiver.recv()

    clients = []
    per_process = -(-args.calls // args.client_processes)
    for index in range(args.client_processes):
        first = index * per_process
        count = min(per_process, args.calls - first)
        if count <= 0:
            break
        parent, child = context.Pipe()
        process = context.Process(target=client_process, args=(child, port, first, count, "uvloop"))
        process.start()
        clients.append((process, parent))

    def ask(message: dict[str, Any]) -> dict[str, Any]:
        if port is None:
            return {"cpu": 0.0, "wall": time.monotonic(), "user": 0.0, "system": 0.0, "pid": None,
                    "connected": 0, "legs": 0, "loop": "-", "threads": 0, "dropped": 0, "srtp_failures": 0,
                    "sender_reports": 0}
        return server_request(port, message)

    try:
        setup = [conn.recv()["setup_s"] for _, conn in clients]
        stats = ask({"op": "stats"})
        print(
            f"{args.calls} calls set up in {max(setup):.1f} s"
            + ("" if args.direct else f": {stats['connected']}/{stats['legs']} server legs connected; "
               f"server loop {stats['loop']}, {stats['threads']} threads"),
            flush=True,
        )
        start = time.monotonic() + args.warmup
        end = start + args.seconds
        for _, conn in clients:
            conn.send({"start": start, "end": end})
        time.sleep(max(0.0, start - time.monotonic()))
        busy0 = machine_busy()
        ask({"op": "stats"})  # resets the garbage-collection counts: the window's own follow
        before = ask({"op": "cpu"})
        profiler = None
        if args.profile and stats["pid"]:
            profiler = subprocess.Popen(
                [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record",
                 "-p", str(stats["pid"]), "-d", str(int(args.seconds)), "-r", "200", "-f", "raw", "-o", args.profile,
                 *(["--native"] if os.environ.get("BENCH_NATIVE") else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        time.sleep(max(0.0, end - time.monotonic()))
        after = ask({"op": "cpu"})
        busy1 = machine_busy()
        if profiler is not None:
            profiler.wait(timeout=60)
        results = [conn.recv() for _, conn in clients]
        stats = ask({"op": "stats"})
        gc_pauses = stats.get("gc", {})
        server_lag = stats.get("lag", [0.0, 0.0, 0.0])
    finally:
        for process, _ in clients:
            process.join(timeout=60)
        if port is not None:
            try:
                server_request(port, {"op": "quit"})
            except OSError:
                pass
        for process in [*([server] if server else []), *(p for p, _ in clients)]:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    sent = sum(r["sent"] for r in results)
    heard = sum(r["heard"] for r in results)
    mismatched = sum(r["mismatched"] for r in results)
    latencies = [x for r in results for x in r["latencies_ms"]]
    wall = after["wall"] - before["wall"]
    server_share = (after["cpu"] - before["cpu"]) / wall
    kernel_share = (after["system"] - before["system"]) / max(after["cpu"] - before["cpu"], 1e-9)
    per_call = server_share / args.calls
    client_share = sum(r["cpu_s"] for r in results) / wall
    loss = 1 - heard / sent if sent else float("nan")
    others = max(0.0, (busy1 - busy0) / wall - server_share - client_share)
    path = "sender -> far peer, no server" if args.direct else "sender -> server -> far peer"

    print(
        f"conditions: {os.cpu_count()} cores shared by "
        + ("" if args.direct else f"the server (harness {harness}, recording {'off' if args.no_record else 'on'}, "
           f"loop {args.loop}) and ")
        + f"{len(clients)} client process(es) ({2 * args.calls} aiortc peers); {args.seconds:.0f} s measured after "
        f"{args.warmup:.0f} s of traffic; other processes used {others * 100:.0f} % of a core meanwhile"
    )
    if not args.direct:
        print(
            f"server cpu: {server_share * 100:.1f} % of one core for {args.calls} calls = {per_call * 100:.3f} % per call "
            f"({kernel_share * 100:.0f} % of it in the kernel); clients: {client_share * 100:.1f} % of one core"
        )
    print(
        f"frames: {sent} sent in the window, {heard} heard by the far peer, loss {loss * 100:.3f} %; "
        f"{mismatched} payloads not byte-identical"
        + ("" if args.direct else f"; server dropped {stats['dropped']}, SRTP failures {stats['srtp_failures']}, "
           f"sender reports {stats['sender_reports']}")
    )
    print(
        f"one-way latency ({path}): p50 {percentile(latencies, 50):.2f} ms, "
        f"p99 {percentile(latencies, 99):.2f} ms, max {max(latencies, default=float('nan')):.2f} ms "
        f"(mean {statistics.fmean(latencies) if latencies else float('nan'):.2f} ms)"
    )
    client_lag = [max(r["lag"][i] for r in results) for i in range(3)]
    print(
        "event-loop lag (a 10 ms timer's lateness) p50 / p99 / max ms: "
        + ("" if args.direct else "server {:.2f} / {:.2f} / {:.1f}, ".format(*server_lag))
        + "clients {:.2f} / {:.2f} / {:.1f}".format(*client_lag)
    )
    if not args.direct:
        print(
            "server garbage collection (count, total ms, longest ms) by generation: "
            + ", ".join(f"gen{g} {n} / {total:.0f} / {longest:.1f}" for g, (n, total, longest) in gc_pauses.items())
        )
        print(f"calls_per_core={1 / per_call:.1f}")
    return 0


if __name__ == "__main__":
    quiet_logs()
    sys.exit(main())
