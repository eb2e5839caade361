# The ECS cluster the API and worker services run in, and the one-off
# migration task (`kefu db upgrade`, as the schema owner) run before a deploy:
#
#   aws ecs run-task --cluster <cluster> --task-definition <migrate family> \
#     --launch-type FARGATE --network-configuration '<see the run_migration_command output>'

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

# The migration calls no AWS API: its task role gets no policy.
module "migrate_task" {
  source = "../ecs_task"

  name                  = "${var.name}-migrate"
  container_name        = "migrate"
  image                 = var.image
  command               = ["kefu", "db", "upgrade"]
  cpu                   = var.cpu
  memory                = var.memory
  environment_variables = var.environment_variables
  secrets               = var.secrets
  secrets_kms_key_arn   = var.secrets_kms_key_arn
  log_group_name        = var.log_group_name
  log_group_arn         = var.log_group_arn
  tags                  = var.tags

  vpc_id                     = var.vpc_id
  vpc_cidr_block             = var.vpc_cidr_block
  security_group_description = "Migration task: no ingress; out to PostgreSQL and Redis in the VPC, HTTPS for AWS APIs"
}
