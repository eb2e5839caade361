variable "name" {
  description = "The task definition's family; its roles are <name>-execution and <name>-task."
  type        = string
}

variable "container_name" {
  description = "The container's name, also its awslogs stream prefix."
  type        = string
}

variable "image" {
  description = "The Kefu container image (registry/repository:tag or @digest)."
  type        = string
}

variable "command" {
  description = "The Kefu process to run, e.g. [\"kefu\", \"api\"]."
  type        = list(string)
}

variable "container_settings" {
  description = "More container definition fields (portMappings, healthCheck, stopTimeout, ...); never environment, secrets or logs."
  type        = any
  default     = {}
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  description = "Egress to PostgreSQL and Redis is allowed into this range only."
  type        = string
}

variable "security_group_description" {
  type = string
}

variable "public_egress_ports" {
  description = "TCP ports the tasks may reach anywhere, by a name (the rule's description)."
  type        = map(number)
  default     = { https = 443 }
}

variable "cpu" {
  type = number
}

variable "memory" {
  type = number
}

variable "environment_variables" {
  description = "Plain settings (KEFU_PUBLIC_URL, KEFU_S3_BUCKET, ...); KEFU_MODE is production. Never credentials: those go in `secrets`."
  type        = map(string)
  default     = {}

  validation {
    condition = length(setintersection(keys(var.environment_variables), [
      "KEFU_JWT_PRIVATE_KEY", "KEFU_DATABASE_URL", "KEFU_PLATFORM_DATABASE_URL", "KEFU_MIGRATION_DATABASE_URL",
      "KEFU_REDIS_URL", "KEFU_TURN_SECRET", "KEFU_STRIPE_API_KEY", "KEFU_STRIPE_WEBHOOK_SECRET", "KEFU_SMTP_URL",
      "KEFU_METRICS_TOKEN",
    ])) == 0
    error_message = "Credentials must be passed in `secrets` (Secrets Manager ARNs), never as plain environment values."
  }
}

variable "secrets" {
  description = "Environment variable name => Secrets Manager ARN, injected by ECS at start."
  type        = map(string)
}

variable "secrets_kms_key_arn" {
  description = "Key encrypting the secrets (the execution role decrypts them)."
  type        = string
}

variable "task_policy_arns" {
  description = "Managed policies for the task role, by a name known at plan time."
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
