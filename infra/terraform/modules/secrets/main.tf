# Secrets Manager entries for every credential Kefu's processes read, encrypted
# with one customer-managed key.
#
# Terraform creates the secrets but never their values: an operator puts them
# (`aws secretsmanager put-secret-value`, see infra/terraform/README.md) so no
# key, password or token is written to Terraform's state or plan.  The one
# exception is the Redis auth token, which ElastiCache needs at creation (the
# redis module reads it).  ECS injects the values into containers as
# `secrets`; media nodes and coturn read theirs at boot through their
# instance role.

locals {
  # key => what goes in it.  The key is also the secret's name suffix.
  secrets = {
    jwt_private_key        = "PEM RSA private key signing access tokens (KEFU_JWT_PRIVATE_KEY)"
    database_url           = "postgresql+asyncpg URL as kefu_app, the RLS-bound role (KEFU_DATABASE_URL)"
    platform_database_url  = "postgresql+asyncpg URL as kefu_platform, the BYPASSRLS role (KEFU_PLATFORM_DATABASE_URL)"
    migration_database_url = "postgresql+asyncpg URL as kefu_owner, the schema owner (KEFU_MIGRATION_DATABASE_URL)"
    redis_auth_token       = "ElastiCache AUTH token (alphanumeric, 16-128 characters)"
    redis_url              = "rediss://:<auth token>@<primary endpoint>:6379/0 (KEFU_REDIS_URL)"
    turn_secret            = "coturn static-auth-secret shared with the API (KEFU_TURN_SECRET)"
    stripe_api_key         = "Stripe secret key (KEFU_STRIPE_API_KEY)"
    stripe_webhook_secret  = "Stripe webhook signing secret whsec_... (KEFU_STRIPE_WEBHOOK_SECRET)"
    metrics_token          = "Bearer token Prometheus presents on /metrics, 16+ characters (KEFU_METRICS_TOKEN)"
  }
}

resource "aws_kms_key" "secrets" {
  description             = "${var.name}: Secrets Manager secrets"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  tags = var.tags
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.name}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

resource "aws_secretsmanager_secret" "this" {
  for_each = local.secrets

  name                    = "${var.name}/${each.key}"
  description             = each.value
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.recovery_window_in_days

  tags = merge(var.tags, { Name = "${var.name}/${each.key}" })
}
