variable "name" {
  description = "Prefix of every resource name; log groups are /kefu/<name>/<component>."
  type        = string
}

variable "log_components" {
  description = "One log group per component."
  type        = set(string)
  default     = ["api", "worker", "migrate", "media", "coturn"]
}

variable "log_retention_days" {
  type    = number
  default = 90
}

variable "alarm_emails" {
  description = "Addresses subscribed to the alarm topic (each must confirm)."
  type        = list(string)
  default     = []
}

variable "alb_arn_suffix" {
  type = string
}

variable "target_group_arn_suffix" {
  type = string
}

variable "rds_instance_id" {
  type = string
}

variable "redis_cache_cluster_ids" {
  description = "Member clusters of the replication group (known at plan time)."
  type        = list(string)
}

variable "ecs_cluster_name" {
  type = string
}

variable "ecs_service_names" {
  description = "ECS services to watch, by a name known at plan time (api, worker)."
  type        = map(string)
}

variable "media_autoscaling_group_name" {
  type = string
}

variable "thresholds" {
  description = "Alarm thresholds."
  type = object({
    api_5xx_per_minute       = optional(number, 10)
    target_response_seconds  = optional(number, 1)
    rds_cpu_percent          = optional(number, 80)
    rds_free_storage_bytes   = optional(number, 10737418240)
    redis_memory_percent     = optional(number, 75)
    redis_engine_cpu_percent = optional(number, 70)
    ecs_cpu_percent          = optional(number, 85)
    media_cpu_percent        = optional(number, 75)
  })
  default = {}
}

variable "tags" {
  type    = map(string)
  default = {}
}
