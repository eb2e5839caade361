# The ECS cluster the API and worker services run in, and the one-off
# migration task (`kefu db upgrade`, as the schema owner) run before a deploy:
#
#   aws ecs run-task --cluster <cluster> --task-definition <migrate family> \
#     --launch-type FARGATE --network-configuration '<see the run_migration_command output>'

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

# --- the migration task -----------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "migrate_execution" {
  name               = "${var.name}-migrate-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "migrate_execution" {
  statement {
    sid       = "PullImage"
    actions   = ["ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = ["*"]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${var.log_group_arn}:*"]
  }

  statement {
    sid       = "ReadSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = values(var.secrets)
  }

  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "migrate_execution" {
  name   = "pull-log-secrets"
  role   = aws_iam_role.migrate_execution.id
  policy = data.aws_iam_policy_document.migrate_execution.json
}

# The migration calls no AWS API: its task role has no policy.
resource "aws_iam_role" "migrate_task" {
  name               = "${var.name}-migrate-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

resource "aws_security_group" "migrate" {
  name        = "${var.name}-migrate"
  description = "Migration task: no ingress; out to PostgreSQL and Redis in the VPC, HTTPS for AWS APIs"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-migrate" })
}

resource "aws_vpc_security_group_egress_rule" "migrate" {
  for_each = {
    https      = { port = 443, cidr = "0.0.0.0/0" }
    postgresql = { port = 5432, cidr = var.vpc_cidr_block }
    redis      = { port = 6379, cidr = var.vpc_cidr_block }
  }

  security_group_id = aws_security_group.migrate.id
  description       = each.key
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr

  tags = var.tags
}

locals {
  migrate_environment = merge(var.environment_variables, { KEFU_MODE = "production" })

  migrate_container = {
    name        = "migrate"
    image       = var.image
    essential   = true
    command     = ["kefu", "db", "upgrade"]
    environment = [for key in sort(keys(local.migrate_environment)) : { name = key, value = local.migrate_environment[key] }]
    secrets     = [for key in sort(keys(var.secrets)) : { name = key, valueFrom = var.secrets[key] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = var.log_group_name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "migrate"
      }
    }
  }
}

resource "aws_ecs_task_definition" "migrate" {
  family                   = "${var.name}-migrate"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.migrate_execution.arn
  task_role_arn            = aws_iam_role.migrate_task.arn
  container_definitions    = jsonencode([local.migrate_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  tags = var.tags
}
