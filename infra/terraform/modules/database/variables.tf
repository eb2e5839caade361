variable "name" {
  description = "Prefix of every resource name; also the DB instance identifier."
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
  description = "Security groups that may connect on 5432, by a name known at plan time (api, workers, migrate)."
  type        = map(string)
}

variable "engine_version" {
  description = "PostgreSQL major (or major.minor) version; the parameter group family follows the major."
  type        = string
  default     = "16"
}

variable "instance_class" {
  type    = string
  default = "db.m7g.large"
}

variable "allocated_storage" {
  description = "GiB of gp3 storage at creation."
  type        = number
  default     = 100
}

variable "max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB."
  type        = number
  default     = 500
}

variable "database_name" {
  type    = string
  default = "kefu"
}

variable "master_username" {
  description = "The RDS admin user (creates kefu_owner, kefu_app and kefu_platform; see docs/database.md). Its password is managed by RDS in Secrets Manager."
  type        = string
  default     = "kefu_admin"
}

variable "backup_retention_period" {
  description = "Days of automated backups and point-in-time recovery."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_period >= 7
    error_message = "Keep at least 7 days of backups."
  }
}

variable "create_read_replica" {
  description = "Create a read replica (reports, ad-hoc analysis)."
  type        = bool
  default     = false
}

variable "replica_instance_class" {
  type    = string
  default = "db.m7g.large"
}

variable "secrets_kms_key_arn" {
  description = "KMS key for the RDS-managed master user secret."
  type        = string
}

variable "tags" {
  type    = map(string)
  default = {}
}
