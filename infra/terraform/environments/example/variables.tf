variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "environment" {
  description = "Environment name: the Environment tag and part of every resource name (e.g. production, staging)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.environment))
    error_message = "Use 2-15 lower-case letters, digits or dashes (names derived from it have length limits)."
  }
}

variable "availability_zones" {
  description = "Two or more zones of the region."
  type        = list(string)
}

variable "vpc_cidr_block" {
  type    = string
  default = "10.40.0.0/16"
}

variable "single_nat_gateway" {
  type    = bool
  default = false
}

variable "image" {
  description = "The Kefu container image every ECS service and media node runs (registry/repository:tag or @digest)."
  type        = string
}

variable "public_url" {
  description = "KEFU_PUBLIC_URL: the HTTPS address browsers use (its host points at the ALB)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for the public URL's host, in the same region."
  type        = string
}

variable "recordings_bucket_name" {
  type = string
}

variable "log_bucket_name" {
  type = string
}

variable "turn_realm" {
  type = string
}

variable "stripe_enabled" {
  description = "Inject the Stripe key and webhook secret (their secrets must have values). Off: billing runs locally."
  type        = bool
  default     = false
}

variable "metrics_enabled" {
  description = "Inject KEFU_METRICS_TOKEN (its secret must have a value) so /metrics answers a scraper presenting it."
  type        = bool
  default     = false
}

variable "api" {
  description = "API replica sizing."
  type = object({
    cpu          = optional(number, 1024)
    memory       = optional(number, 2048)
    min_capacity = optional(number, 2)
    max_capacity = optional(number, 10)
  })
  default = {}
}

variable "workers" {
  description = "Worker sizing."
  type = object({
    cpu          = optional(number, 1024)
    memory       = optional(number, 2048)
    min_capacity = optional(number, 1)
    max_capacity = optional(number, 6)
  })
  default = {}
}

variable "media" {
  description = "Media node sizing."
  type = object({
    instance_type = optional(string, "c7i.large")
    min_size      = optional(number, 2)
    max_size      = optional(number, 10)
    max_calls     = optional(number, 500)
  })
  default = {}
}

variable "coturn_instance_count" {
  type    = number
  default = 2
}

variable "database" {
  description = "PostgreSQL sizing and backups."
  type = object({
    instance_class          = optional(string, "db.m7g.large")
    allocated_storage       = optional(number, 100)
    backup_retention_period = optional(number, 14)
    create_read_replica     = optional(bool, false)
  })
  default = {}
}

variable "redis_node_type" {
  type    = string
  default = "cache.m7g.large"
}

variable "log_retention_days" {
  type    = number
  default = 90
}

variable "alarm_emails" {
  type    = list(string)
  default = []
}

variable "extra_environment" {
  description = "More plain KEFU_* settings for the API and workers (intervals, SMTP sender, ...). Never credentials."
  type        = map(string)
  default     = {}
}
