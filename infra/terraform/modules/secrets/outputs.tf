output "arns" {
  description = "Secret ARNs by key (jwt_private_key, database_url, platform_database_url, migration_database_url, redis_auth_token, redis_url, turn_secret, stripe_api_key, stripe_webhook_secret, metrics_token)."
  value       = { for key, secret in aws_secretsmanager_secret.this : key => secret.arn }
}

output "kms_key_arn" {
  description = "The key encrypting the secrets; readers need kms:Decrypt on it."
  value       = aws_kms_key.secrets.arn
}
