output "instance_id" {
  description = "The primary's identifier (CloudWatch dimension DBInstanceIdentifier)."
  value       = aws_db_instance.primary.identifier
}

output "address" {
  description = "Host name to put in the KEFU_*DATABASE_URL secrets."
  value       = aws_db_instance.primary.address
}

output "port" {
  value = aws_db_instance.primary.port
}

output "database_name" {
  value = aws_db_instance.primary.db_name
}

output "master_user_secret_arn" {
  description = "The RDS-managed secret holding the master user's password."
  value       = aws_db_instance.primary.master_user_secret[0].secret_arn
}

output "reports_replica_address" {
  value = var.create_read_replica ? aws_db_instance.reports[0].address : null
}

output "security_group_id" {
  value = aws_security_group.database.id
}
