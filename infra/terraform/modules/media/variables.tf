variable "name" {
  description = "Prefix of every resource name (the group is <name>-media)."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  description = "Only this range may reach the /health port; Redis egress is limited to it."
  type        = string
}

variable "public_subnet_ids" {
  description = "Media nodes need public addresses: browsers send their RTP straight to them."
  type        = list(string)
}

variable "image" {
  description = "The Kefu container image, run with `kefu media`."
  type        = string
}

variable "ami_id" {
  description = "AMI with Docker available through dnf (Amazon Linux 2023). Empty: the latest Amazon Linux 2023."
  type        = string
  default     = ""
}

variable "instance_type" {
  type    = string
  default = "c7i.large"
}

variable "min_size" {
  type    = number
  default = 2
}

variable "max_size" {
  type    = number
  default = 10
}

variable "cpu_target_percent" {
  description = "Average instance CPU the group scales to."
  type        = number
  default     = 50
}

variable "health_port" {
  description = "KEFU_PORT of `kefu media`: GET /health, reachable from inside the VPC only."
  type        = number
  default     = 8101
}

variable "rtp_port_range" {
  description = "UDP ports of the nodes' ICE/RTP sockets, open to the world. aiortc binds ephemeral ports, so the instance's net.ipv4.ip_local_port_range is set to this range."
  type = object({
    from = number
    to   = number
  })
  default = { from = 40000, to = 60999 }
}

variable "max_calls" {
  description = "KEFU_MEDIA_MAX_CALLS: calls one node accepts before it reports itself full."
  type        = number
  default     = 500
}

variable "environment_variables" {
  description = "Plain settings (KEFU_S3_BUCKET, KEFU_ICE_SERVERS, ...). Never credentials: those go in `secrets`."
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
  description = "Environment variable name => Secrets Manager ARN, read at boot through the instance role."
  type        = map(string)
}

variable "secrets_kms_key_arn" {
  type = string
}

variable "instance_policy_arns" {
  description = "Managed policies for the instance role (the recordings bucket's read/write policy), by a name known at plan time."
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
