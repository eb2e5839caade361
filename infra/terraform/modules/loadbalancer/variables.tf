variable "name" {
  description = "Prefix of every resource name (the ALB's name: at most 28 characters)."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  description = "The ALB may reach targets in this range only."
  type        = string
}

variable "public_subnet_ids" {
  type = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener (the KEFU_PUBLIC_URL host)."
  type        = string
}

variable "ssl_policy" {
  type    = string
  default = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "target_port" {
  description = "Port the API containers listen on (KEFU_PORT)."
  type        = number
  default     = 8000
}

variable "health_check_path" {
  description = "Target health: ECS replaces a target that fails it, so it must not depend on shared services (/health; /ready would replace every replica during a database fail-over)."
  type        = string
  default     = "/health"
}

variable "idle_timeout" {
  description = "Seconds a connection (a websocket too) may stay silent before the ALB closes it."
  type        = number
  default     = 300
}

variable "log_bucket_name" {
  description = "Globally unique name of the access-log bucket."
  type        = string
}

variable "log_retention_days" {
  type    = number
  default = 90
}

variable "tags" {
  type    = map(string)
  default = {}
}
