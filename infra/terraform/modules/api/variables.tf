variable "name" {
  description = "Prefix of every resource name (the service is <name>-api)."
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

variable "alb_security_group_id" {
  description = "Only the ALB may reach the container port."
  type        = string
}

variable "target_group_arn" {
  type = string
}

variable "alb_arn_suffix" {
  description = "For request-count autoscaling (ALBRequestCountPerTarget)."
  type        = string
}

variable "target_group_arn_suffix" {
  type = string
}

variable "image" {
  description = "The Kefu container image (registry/repository:tag or @digest)."
  type        = string
}

variable "container_port" {
  type    = number
  default = 8000
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
  default = 2
}

variable "max_capacity" {
  type    = number
  default = 10
}

variable "cpu_target_percent" {
  type    = number
  default = 60
}

variable "requests_per_target" {
  description = "Target of ALB requests per replica per minute."
  type        = number
  default     = 3000
}

variable "environment_variables" {
  description = "Plain settings (KEFU_PUBLIC_URL, KEFU_S3_BUCKET, ...). Never credentials (the ecs_task module refuses them): those go in `secrets`."
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
