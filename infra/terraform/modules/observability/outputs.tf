output "log_group_names" {
  description = "Log group names by component."
  value       = { for component, group in aws_cloudwatch_log_group.this : component => group.name }
}

output "log_group_arns" {
  description = "Log group ARNs by component."
  value       = { for component, group in aws_cloudwatch_log_group.this : component => group.arn }
}

output "alarm_topic_arn" {
  value = aws_sns_topic.alarms.arn
}

output "kms_key_arn" {
  value = aws_kms_key.observability.arn
}
