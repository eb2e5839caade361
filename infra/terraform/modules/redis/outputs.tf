output "replication_group_id" {
  value = aws_elasticache_replication_group.this.id
}

output "primary_endpoint_address" {
  description = "Host for KEFU_REDIS_URL (rediss://:<token>@<this>:6379/0)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "port" {
  value = aws_elasticache_replication_group.this.port
}

output "cache_cluster_ids" {
  description = "Member cluster ids (CloudWatch dimension CacheClusterId), known at plan time: ElastiCache names them <group>-001, -002, ..."
  value       = [for i in range(var.num_cache_clusters) : format("%s-%03d", var.name, i + 1)]
}

output "security_group_id" {
  value = aws_security_group.redis.id
}
