output "dns_name" {
  description = "Point the KEFU_PUBLIC_URL host at this (CNAME or Route 53 alias)."
  value       = aws_lb.this.dns_name
}

output "zone_id" {
  value = aws_lb.this.zone_id
}

output "arn_suffix" {
  description = "CloudWatch dimension LoadBalancer."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn" {
  description = "Available once the HTTPS listener forwards to it: ECS refuses a target group no load balancer uses."
  value       = aws_lb_target_group.api.arn
  depends_on  = [aws_lb_listener.https]
}

output "target_group_arn_suffix" {
  description = "CloudWatch dimension TargetGroup."
  value       = aws_lb_target_group.api.arn_suffix
}

output "security_group_id" {
  value = aws_security_group.alb.id
}

output "log_bucket_name" {
  value = aws_s3_bucket.logs.id
}
