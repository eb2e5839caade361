variable "name" {
  description = "Prefix of every resource name; also the replication group id (at most 40 characters)."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Private subnets in two or more availability zones."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups that may connect on 6379, by a name known at plan time (api, workers, media)."
  type        = map(string)
}

variable "node_type" {
  type    = string
  default = "cache.m7g.large"
}

variable "engine_version" {
  type    = string
  default = "7.1"
}

variable "num_cache_clusters" {
  description = "Primary plus replicas, spread over the subnets' zones (two or more for failover)."
  type        = number
  default     = 2

  validation {
    condition     = var.num_cache_clusters >= 2
    error_message = "Automatic failover needs at least one replica (two cache clusters)."
  }
}

variable "auth_token_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token; its value must be set before this module is applied."
  type        = string
}

variable "tags" {
  type    = map(string)
  default = {}
}
