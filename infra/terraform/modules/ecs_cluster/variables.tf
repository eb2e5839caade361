variable "name" {
  description = "Prefix of every resource name; also the ECS cluster's name."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  description = "Egress to PostgreSQL and Redis is allowed into this range only."
  type        = string
}

variable "image" {
  description = "The Kefu container image (registry/repository:tag or @digest) the migration task runs."
  type        = string
}

variable "environment_variables" {
  description = "Plain settings for the migration task (never credentials, which the ecs_task module refuses: those go in `secrets`)."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variable name => Secrets Manager ARN, injected by ECS. The migration needs KEFU_MIGRATION_DATABASE_URL besides the production settings."
  type        = map(string)

  validation {
    condition     = contains(keys(var.secrets), "KEFU_MIGRATION_DATABASE_URL")
    error_message = "The migration task runs as the schema owner: give it KEFU_MIGRATION_DATABASE_URL."
  }
}

variable "secrets_kms_key_arn" {
  description = "Key encrypting the secrets (the execution role decrypts them)."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group of the migration task."
  type        = string
}

variable "log_group_arn" {
  type = string
}

variable "cpu" {
  type    = number
  default = 512
}

variable "memory" {
  type    = number
  default = 1024
}

variable "tags" {
  type    = map(string)
  default = {}
}
