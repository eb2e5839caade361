output "alb_dns_name" {
  description = "Point the public URL's host here."
  value       = module.loadbalancer.dns_name
}

output "ecs_cluster_name" {
  value = module.ecs_cluster.cluster_name
}

output "migrate_task_definition_family" {
  value = module.ecs_cluster.migrate_task_definition_family
}

output "run_migration_command" {
  description = "Runs `kefu db upgrade` once, as the schema owner."
  value = join(" ", [
    "aws ecs run-task --cluster", module.ecs_cluster.cluster_name,
    "--task-definition", module.ecs_cluster.migrate_task_definition_family,
    "--launch-type FARGATE --network-configuration",
    "'awsvpcConfiguration={subnets=[${join(",", module.network.private_subnet_ids)}],securityGroups=[${module.ecs_cluster.migrate_security_group_id}],assignPublicIp=DISABLED}'",
  ])
}

output "api_service_name" {
  value = module.api.service_name
}

output "worker_service_name" {
  value = module.workers.service_name
}

output "media_autoscaling_group_name" {
  value = module.media.autoscaling_group_name
}

output "database_address" {
  value = module.database.address
}

output "database_master_user_secret_arn" {
  value = module.database.master_user_secret_arn
}

output "database_reports_replica_address" {
  value = module.database.reports_replica_address
}

output "redis_primary_endpoint" {
  value = module.redis.primary_endpoint_address
}

output "recordings_bucket" {
  value = module.recordings.bucket_name
}

output "turn_urls" {
  value = module.coturn.turn_urls
}

output "secret_arns" {
  description = "Where to put each secret's value (infra/terraform/README.md)."
  value       = module.secrets.arns
}

output "alarm_topic_arn" {
  value = module.observability.alarm_topic_arn
}
