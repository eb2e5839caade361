output "bucket_name" {
  value = aws_s3_bucket.recordings.id
}

output "bucket_arn" {
  value = aws_s3_bucket.recordings.arn
}

output "prefix" {
  value = var.prefix
}

output "kms_key_arn" {
  value = aws_kms_key.recordings.arn
}

output "read_write_policy_arn" {
  description = "Managed policy to attach to the roles of the API, workers and media nodes."
  value       = aws_iam_policy.read_write.arn
}
