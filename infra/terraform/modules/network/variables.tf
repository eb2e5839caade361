variable "name" {
  description = "Prefix of every resource name (e.g. kefu-prod)."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's IPv4 range."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones to spread subnets over (two or more)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones: RDS Multi-AZ, Redis failover and the ALB need them."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper, one AZ's failure cuts egress) instead of one per AZ."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags merged into every resource's tags (the provider's default_tags add Environment)."
  type        = map(string)
  default     = {}
}
