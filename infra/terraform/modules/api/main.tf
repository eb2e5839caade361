# The API replicas (`kefu api`): stateless Fargate tasks in the private
# subnets behind the ALB, scaled on CPU and on requests per replica.

locals {
  service_name = "${var.name}-api"
}

# The task definition, its roles (the task role: the recordings bucket, nothing
# else) and its security group.
module "task" {
  source = "../ecs_task"

  name    = local.service_name
  image   = var.image
  command = ["kefu", "api"]
  cpu     = var.cpu
  memory  = var.memory
  environment_variables = merge(var.environment_variables, {
    KEFU_HOST = "0.0.0.0"
    KEFU_PORT = tostring(var.container_port)
  })
  secrets             = var.secrets
  secrets_kms_key_arn = var.secrets_kms_key_arn
  task_policy_arns    = var.task_policy_arns
  log_group_name      = var.log_group_name
  log_group_arn       = var.log_group_arn
  tags                = var.tags

  vpc_id                     = var.vpc_id
  vpc_cidr_block             = var.vpc_cidr_block
  security_group_description = "API replicas: the container port from the ALB only"
  # AWS APIs (S3, Secrets Manager), Stripe, SSO providers, report webhooks.
  public_egress_ports = { https = 443 }

  container_name = "api"
  container_settings = {
    portMappings = [{ containerPort = var.container_port, protocol = "tcp" }]
    # Liveness (docs/observability.md): /health checks nothing shared, so an
    # outage of PostgreSQL or Redis never gets every task replaced at once.
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${var.container_port}/health', timeout=4)"]
      interval    = 30
      timeout     = 5
      retries     = 6
      startPeriod = 60
    }
    # SIGTERM first; websockets get this long to close before SIGKILL.
    stopTimeout     = 120
    linuxParameters = { initProcessEnabled = true }
  }
}

# --- network ------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "from_alb" {
  security_group_id            = module.task.security_group_id
  description                  = "HTTP and websockets from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = var.alb_security_group_id

  tags = var.tags
}

# --- service ------------------------------------------------------------------

resource "aws_ecs_service" "api" {
  name            = local.service_name
  cluster         = var.cluster_name
  task_definition = module.task.arn
  desired_count   = var.min_capacity
  launch_type     = "FARGATE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60
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

  load_balancer {
    target_group_arn = var.target_group_arn
    container_name   = "api"
    container_port   = var.container_port
  }

  tags = var.tags

  lifecycle {
    # Autoscaling owns the count after creation.
    ignore_changes = [desired_count]
  }
}

# --- autoscaling -------------------------------------------------------------------------

resource "aws_appautoscaling_target" "api" {
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.api.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity

  tags = var.tags
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${local.service_name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  resource_id        = aws_appautoscaling_target.api.resource_id
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${local.service_name}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  resource_id        = aws_appautoscaling_target.api.resource_id
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.alb_arn_suffix}/${var.target_group_arn_suffix}"
    }
  }
}
