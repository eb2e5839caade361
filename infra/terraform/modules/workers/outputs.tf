output "service_name" {
  value = aws_ecs_service.worker.name
}

output "security_group_id" {
  value = module.task.security_group_id
}

output "task_role_arn" {
  value = module.task.task_role_arn
}
