variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "public_subnet_ids" {
  description = "Servers are spread over these subnets (one availability zone each)."
  type        = list(string)
}

variable "instance_count" {
  description = "Number of coturn servers, each with its own Elastic IP (browsers get every one in KEFU_TURN_URLS)."
  type        = number
  default     = 2
}

variable "instance_type" {
  type    = string
  default = "c7i.large"
}

variable "ami_id" {
  description = "AMI with Docker available through dnf (Amazon Linux 2023). Empty: the latest Amazon Linux 2023."
  type        = string
  default     = ""
}

variable "image" {
  description = "coturn container image."
  type        = string
  default     = "coturn/coturn:4.6"
}

variable "realm" {
  description = "TURN realm (e.g. turn.kefu.example.com)."
  type        = string
}

variable "relay_port_range" {
  description = "UDP ports allocations are given (coturn min-port/max-port), open to the world."
  type = object({
    from = number
    to   = number
  })
  default = { from = 49152, to = 65535 }
}

variable "turn_secret_arn" {
  description = "Secrets Manager secret holding the static-auth-secret (the same value as the API's KEFU_TURN_SECRET)."
  type        = string
}

variable "secrets_kms_key_arn" {
  type = string
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
