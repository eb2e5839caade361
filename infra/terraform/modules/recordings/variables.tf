variable "bucket_name" {
  description = "Globally unique name of the recordings bucket (KEFU_S3_BUCKET)."
  type        = string
}

variable "prefix" {
  description = "Key prefix Kefu writes under (KEFU_S3_PREFIX); the access policy is limited to it. Empty: the whole bucket."
  type        = string
  default     = "recordings/"
}

variable "transition_to_ia_days" {
  description = "Days after which recordings move to STANDARD_IA."
  type        = number
  default     = 30
}

variable "transition_to_glacier_ir_days" {
  description = "Days after which recordings move to GLACIER_IR (still playable at once)."
  type        = number
  default     = 180
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted recording stays recoverable. Kefu's retention purge deletes recordings; their data is gone for good only after this."
  type        = number
  default     = 30
}

variable "tags" {
  type    = map(string)
  default = {}
}
