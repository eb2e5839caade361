# Logs and alarms: KMS-encrypted CloudWatch log groups with retention for
# every component, an encrypted SNS topic, and alarms on the ALB, RDS, Redis,
# the ECS services and the media nodes.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

data "aws_iam_policy_document" "key" {
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:/kefu/${var.name}/*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "observability" {
  description             = "${var.name}: CloudWatch logs and the alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json

  tags = var.tags
}

resource "aws_kms_alias" "observability" {
  name          = "alias/${var.name}-observability"
  target_key_id = aws_kms_key.observability.key_id
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = var.log_components

  name              = "/kefu/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.observability.arn

  tags = var.tags
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.observability.arn

  tags = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  actions = [aws_sns_topic.alarms.arn]

  alb_dimensions    = { LoadBalancer = var.alb_arn_suffix }
  target_dimensions = merge(local.alb_dimensions, { TargetGroup = var.target_group_arn_suffix })

  # Every kind of alarm: what it watches and when it fires.  `targets` holds
  # one entry per alarm of that kind (its name, dimensions and, optionally,
  # description): one for most, one per Redis node, one per ECS service.
  # Unset fields take local.alarm_defaults.
  alarm_kinds = {
    # --- ALB
    api_5xx = {
      namespace           = "AWS/ApplicationELB"
      metric_name         = "HTTPCode_Target_5XX_Count"
      statistic           = "Sum"
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 3
      threshold           = var.thresholds.api_5xx_per_minute
      treat_missing_data  = "notBreaching"
      targets = { alb = {
        name        = "${var.name}-api-5xx"
        description = "API replicas answer 5xx (or the ALB finds no healthy replica)."
        dimensions  = local.target_dimensions
      } }
    }
    alb_5xx = {
      namespace           = "AWS/ApplicationELB"
      metric_name         = "HTTPCode_ELB_5XX_Count"
      statistic           = "Sum"
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 3
      threshold           = var.thresholds.api_5xx_per_minute
      treat_missing_data  = "notBreaching"
      targets = { alb = {
        name        = "${var.name}-alb-5xx"
        description = "The ALB itself answers 5xx (no healthy target, timeouts)."
        dimensions  = local.alb_dimensions
      } }
    }
    target_response_time = {
      namespace           = "AWS/ApplicationELB"
      metric_name         = "TargetResponseTime"
      extended_statistic  = "p95"
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 4
      threshold           = var.thresholds.target_response_seconds
      treat_missing_data  = "notBreaching"
      targets = { alb = {
        name        = "${var.name}-api-response-time"
        description = "p95 API response time is high."
        dimensions  = local.target_dimensions
      } }
    }
    # --- RDS
    rds_cpu = {
      namespace          = "AWS/RDS"
      metric_name        = "CPUUtilization"
      statistic          = "Average"
      evaluation_periods = 3
      threshold          = var.thresholds.rds_cpu_percent
      targets = { rds = {
        name       = "${var.name}-rds-cpu"
        dimensions = { DBInstanceIdentifier = var.rds_instance_id }
      } }
    }
    rds_free_storage = {
      namespace           = "AWS/RDS"
      metric_name         = "FreeStorageSpace"
      statistic           = "Minimum"
      evaluation_periods  = 2
      threshold           = var.thresholds.rds_free_storage_bytes
      comparison_operator = "LessThanThreshold"
      targets = { rds = {
        name       = "${var.name}-rds-free-storage"
        dimensions = { DBInstanceIdentifier = var.rds_instance_id }
      } }
    }
    # --- Redis, each node
    redis_memory = {
      namespace          = "AWS/ElastiCache"
      metric_name        = "DatabaseMemoryUsagePercentage"
      statistic          = "Maximum"
      evaluation_periods = 2
      threshold          = var.thresholds.redis_memory_percent
      targets            = { for id in var.redis_cache_cluster_ids : id => { name = "${id}-memory", dimensions = { CacheClusterId = id } } }
    }
    redis_cpu = {
      namespace          = "AWS/ElastiCache"
      metric_name        = "EngineCPUUtilization"
      statistic          = "Average"
      evaluation_periods = 3
      threshold          = var.thresholds.redis_engine_cpu_percent
      targets            = { for id in var.redis_cache_cluster_ids : id => { name = "${id}-engine-cpu", dimensions = { CacheClusterId = id } } }
    }
    # --- ECS, each service, and the media nodes
    ecs_cpu = {
      namespace          = "AWS/ECS"
      metric_name        = "CPUUtilization"
      statistic          = "Average"
      evaluation_periods = 3
      threshold          = var.thresholds.ecs_cpu_percent
      targets = { for key, service in var.ecs_service_names : key => {
        name        = "${service}-cpu"
        description = "The ${key} service runs hot even after scaling out (at its maximum?)."
        dimensions  = { ClusterName = var.ecs_cluster_name, ServiceName = service }
      } }
    }
    media_cpu = {
      namespace           = "AWS/EC2"
      metric_name         = "CPUUtilization"
      statistic           = "Average"
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 3
      threshold           = var.thresholds.media_cpu_percent
      targets = { media = {
        name        = "${var.media_autoscaling_group_name}-cpu"
        description = "Media nodes run hot: audio quality suffers before calls fail."
        dimensions  = { AutoScalingGroupName = var.media_autoscaling_group_name }
      } }
    }
  }

  # null: the provider's default (treat_missing_data "missing", no description).
  alarm_defaults = {
    description         = null
    statistic           = null
    extended_statistic  = null
    period              = 300
    datapoints_to_alarm = null
    comparison_operator = "GreaterThanThreshold"
    treat_missing_data  = null
  }

  # One alarm per kind and target, keyed "<kind>/<target>" (known at plan time).
  alarms = merge([
    for kind, alarm in local.alarm_kinds : {
      for target, watched in alarm.targets : "${kind}/${target}" => merge(local.alarm_defaults, alarm, watched)
    }
  ]...)
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = each.value.name
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  extended_statistic  = each.value.extended_statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints_to_alarm
  threshold           = each.value.threshold
  comparison_operator = each.value.comparison_operator
  treat_missing_data  = each.value.treat_missing_data
  alarm_actions       = local.actions
  ok_actions          = local.actions

  tags = var.tags
}
