output "cluster_name" {
  value = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  value = aws_ecs_cluster.this.arn
}

output "migrate_task_definition_family" {
  description = "Run it (latest revision) before rolling the services: `kefu db upgrade`."
  value       = module.migrate_task.family
}

output "migrate_security_group_id" {
  value = module.migrate_task.security_group_id
}
