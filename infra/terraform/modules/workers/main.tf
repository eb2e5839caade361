# The Dramatiq workers (`kefu worker`): Fargate tasks in the private subnets,
# no ingress at all, scaled on CPU and, when a backlog metric is published, on
# waiting messages per worker.

locals {
  service_name = "${var.name}-worker"
}

# The task definition, its roles and its security group (no ingress).  The
# retention purge deletes recordings: the task role gets the bucket policy.
module "task" {
  source = "../ecs_task"

  name                  = local.service_name
  image                 = var.image
  command               = ["kefu", "worker"]
  cpu                   = var.cpu
  memory                = var.memory
  environment_variables = var.environment_variables
  secrets               = var.secrets
  secrets_kms_key_arn   = var.secrets_kms_key_arn
  task_policy_arns      = var.task_policy_arns
  log_group_name        = var.log_group_name
  log_group_arn         = var.log_group_arn
  tags                  = var.tags

  vpc_id                     = var.vpc_id
  vpc_cidr_block             = var.vpc_cidr_block
  security_group_description = "Workers: no ingress; out to PostgreSQL and Redis in the VPC, HTTPS and SMTP outside"
  # AWS APIs, Stripe, report webhooks; e-mail.
  public_egress_ports = { https = 443, smtps = 465, submission = 587 }

  container_name = "worker"
  container_settings = {
    # SIGTERM, then this long before SIGKILL.  A message is acknowledged only
    # once handled: one a stopped worker had not finished is delivered again.
    stopTimeout     = 120
    linuxParameters = { initProcessEnabled = true }
  }
}

# --- service -------------------------------------------------------------------

resource "aws_ecs_service" "worker" {
  name            = local.service_name
  cluster         = var.cluster_name
  task_definition = module.task.arn
  desired_count   = var.min_capacity
  launch_type     = "FARGATE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [module.task.security_group_id]
    assign_public_ip = false
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [desired_count]
  }
}

# --- autoscaling ------------------------------------------------------------------------

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.worker.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity

  tags = var.tags
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${local.service_name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Backlog per worker = waiting messages / running workers (Container Insights).
resource "aws_appautoscaling_policy" "queue_depth" {
  count = var.queue_depth_metric == null ? 0 : 1

  name               = "${local.service_name}-queue-depth"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.queue_depth_metric.target_per_worker
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    customized_metric_specification {
      metrics {
        id          = "backlog"
        return_data = false

        metric_stat {
          stat = "Average"

          metric {
            namespace   = var.queue_depth_metric.namespace
            metric_name = var.queue_depth_metric.metric_name

            dynamic "dimensions" {
              for_each = var.queue_depth_metric.dimensions
              content {
                name  = dimensions.key
                value = dimensions.value
              }
            }
          }
        }
      }

      metrics {
        id          = "workers"
        return_data = false

        metric_stat {
          stat = "Average"

          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"

            dimensions {
              name  = "ClusterName"
              value = var.cluster_name
            }

            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.worker.name
            }
          }
        }
      }

      metrics {
        id          = "per_worker"
        label       = "waiting messages per worker"
        expression  = "backlog / IF(workers > 0, workers, 1)"
        return_data = true
      }
    }
  }
}
