variable "name" {
  description = "Prefix of every resource name (the service is <name>-worker)."
  type        = string
}

variable "cluster_name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  description = "Egress to PostgreSQL and Redis is allowed into this range only."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the tasks run in."
  type        = list(string)
}

variable "image" {
  description = "The Kefu container image (registry/repository:tag or @digest)."
  type        = string
}

variable "cpu" {
  type    = number
  default = 1024
}

variable "memory" {
  type    = number
  default = 2048
}

variable "min_capacity" {
  type    = number
  default = 1
}

variable "max_capacity" {
  type    = number
  default = 10
}

variable "cpu_target_percent" {
  type    = number
  default = 70
}

variable "queue_depth_metric" {
  description = <<-EOT
    Optional CloudWatch metric holding the Dramatiq backlog (messages waiting in
    Redis, e.g. LLEN of kefu-jobs:<queue>), published by something outside Kefu
    (a scheduled Lambda or a sidecar: Kefu does not publish it).  When set, the
    workers also track `target_per_worker` waiting messages per worker.
  EOT
  type = object({
    namespace         = string
    metric_name       = string
    dimensions        = optional(map(string), {})
    target_per_worker = number
  })
  default = null
}

variable "environment_variables" {
  description = "Plain settings (KEFU_S3_BUCKET, intervals, ...). Never credentials (the ecs_task module refuses them): those go in `secrets`."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variable name => Secrets Manager ARN, injected by ECS at start."
  type        = map(string)
}

variable "secrets_kms_key_arn" {
  type = string
}

variable "task_policy_arns" {
  description = "Managed policies for the task role (the recordings bucket's read/write policy), by a name known at plan time."
  type        = map(string)
  default     = {}
}

variable "log_group_name" {
  type = string
}

variable "log_group_arn" {
  type = string
}

variable "tags" {
  type    = map(string)
  default = {}
}
