output "autoscaling_group_name" {
  value = aws_autoscaling_group.media.name
}

output "security_group_id" {
  value = aws_security_group.media.id
}

output "role_arn" {
  value = aws_iam_role.media.arn
}
