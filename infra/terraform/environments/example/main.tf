# An example Kefu environment on AWS: every module wired together.  Copy this
# folder per environment (production, staging), set a remote backend in
# versions.tf and the values in terraform.tfvars.

locals {
  name = "kefu-${var.environment}"

  # default_tags cover most resources; these also reach what default_tags do
  # not (Auto Scaling groups and the instances they launch, launch template
  # tag specifications).
  tags = {
    Environment = var.environment
    Project     = "kefu"
  }

  secret = module.secrets.arns

  # Plain settings shared by the API, the workers and the media nodes.
  recordings_environment = {
    KEFU_RECORDINGS_BACKEND = "s3"
    KEFU_S3_BUCKET          = module.recordings.bucket_name
    KEFU_S3_PREFIX          = module.recordings.prefix
    KEFU_S3_REGION          = var.region
  }

  app_environment = merge(var.extra_environment, local.recordings_environment, {
    KEFU_PUBLIC_URL  = var.public_url
    KEFU_ICE_SERVERS = module.coturn.stun_urls
    KEFU_TURN_URLS   = module.coturn.turn_urls
    # The ALB's nodes live in the public subnets.
    KEFU_TRUSTED_PROXIES = join(",", module.network.public_subnet_cidr_blocks)
  })

  stripe_secrets = var.stripe_enabled ? {
    KEFU_STRIPE_API_KEY        = local.secret.stripe_api_key
    KEFU_STRIPE_WEBHOOK_SECRET = local.secret.stripe_webhook_secret
  } : {}

  metrics_secrets = var.metrics_enabled ? { KEFU_METRICS_TOKEN = local.secret.metrics_token } : {}

  # What every production process needs to start (docs/configuration.md).
  core_secrets = {
    KEFU_DATABASE_URL          = local.secret.database_url
    KEFU_PLATFORM_DATABASE_URL = local.secret.platform_database_url
    KEFU_REDIS_URL             = local.secret.redis_url
    KEFU_JWT_PRIVATE_KEY       = local.secret.jwt_private_key
  }

  # What the API and the workers both get: their credentials (the API adds
  # the TURN secret) and, like the media nodes, the recordings policy.
  app_secrets            = merge(local.core_secrets, local.stripe_secrets, local.metrics_secrets)
  recordings_policy_arns = { recordings = module.recordings.read_write_policy_arn }
}

module "network" {
  source = "../../modules/network"

  name               = local.name
  cidr_block         = var.vpc_cidr_block
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
  tags               = local.tags
}

module "secrets" {
  source = "../../modules/secrets"

  name = local.name
  tags = local.tags
}

module "observability" {
  source = "../../modules/observability"

  name               = local.name
  log_retention_days = var.log_retention_days
  alarm_emails       = var.alarm_emails

  alb_arn_suffix               = module.loadbalancer.arn_suffix
  target_group_arn_suffix      = module.loadbalancer.target_group_arn_suffix
  rds_instance_id              = module.database.instance_id
  redis_cache_cluster_ids      = module.redis.cache_cluster_ids
  ecs_cluster_name             = module.ecs_cluster.cluster_name
  ecs_service_names            = { api = module.api.service_name, worker = module.workers.service_name }
  media_autoscaling_group_name = module.media.autoscaling_group_name

  tags = local.tags
}

module "database" {
  source = "../../modules/database"

  name                    = local.name
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.private_subnet_ids
  instance_class          = var.database.instance_class
  allocated_storage       = var.database.allocated_storage
  backup_retention_period = var.database.backup_retention_period
  create_read_replica     = var.database.create_read_replica
  secrets_kms_key_arn     = module.secrets.kms_key_arn

  allowed_security_group_ids = {
    api     = module.api.security_group_id
    workers = module.workers.security_group_id
    migrate = module.ecs_cluster.migrate_security_group_id
  }

  tags = local.tags
}

module "redis" {
  source = "../../modules/redis"

  name                  = local.name
  vpc_id                = module.network.vpc_id
  subnet_ids            = module.network.private_subnet_ids
  node_type             = var.redis_node_type
  auth_token_secret_arn = local.secret.redis_auth_token

  allowed_security_group_ids = {
    api     = module.api.security_group_id
    workers = module.workers.security_group_id
    migrate = module.ecs_cluster.migrate_security_group_id
    media   = module.media.security_group_id
  }

  tags = local.tags
}

module "recordings" {
  source = "../../modules/recordings"

  bucket_name = var.recordings_bucket_name
  tags        = local.tags
}

module "loadbalancer" {
  source = "../../modules/loadbalancer"

  name              = local.name
  vpc_id            = module.network.vpc_id
  vpc_cidr_block    = module.network.vpc_cidr_block
  public_subnet_ids = module.network.public_subnet_ids
  certificate_arn   = var.certificate_arn
  log_bucket_name   = var.log_bucket_name
  health_check_path = "/health"
  tags              = local.tags
}

module "ecs_cluster" {
  source = "../../modules/ecs_cluster"

  name                  = local.name
  vpc_id                = module.network.vpc_id
  vpc_cidr_block        = module.network.vpc_cidr_block
  image                 = var.image
  environment_variables = { KEFU_PUBLIC_URL = var.public_url }
  secrets = merge(local.core_secrets, {
    KEFU_MIGRATION_DATABASE_URL = local.secret.migration_database_url
  })
  secrets_kms_key_arn = module.secrets.kms_key_arn
  log_group_name      = module.observability.log_group_names["migrate"]
  log_group_arn       = module.observability.log_group_arns["migrate"]
  tags                = local.tags
}

module "api" {
  source = "../../modules/api"

  name                    = local.name
  cluster_name            = module.ecs_cluster.cluster_name
  vpc_id                  = module.network.vpc_id
  vpc_cidr_block          = module.network.vpc_cidr_block
  subnet_ids              = module.network.private_subnet_ids
  alb_security_group_id   = module.loadbalancer.security_group_id
  target_group_arn        = module.loadbalancer.target_group_arn
  alb_arn_suffix          = module.loadbalancer.arn_suffix
  target_group_arn_suffix = module.loadbalancer.target_group_arn_suffix

  image        = var.image
  cpu          = var.api.cpu
  memory       = var.api.memory
  min_capacity = var.api.min_capacity
  max_capacity = var.api.max_capacity

  environment_variables = local.app_environment
  secrets               = merge(local.app_secrets, { KEFU_TURN_SECRET = local.secret.turn_secret })
  secrets_kms_key_arn   = module.secrets.kms_key_arn
  task_policy_arns      = local.recordings_policy_arns

  log_group_name = module.observability.log_group_names["api"]
  log_group_arn  = module.observability.log_group_arns["api"]
  tags           = local.tags
}

module "workers" {
  source = "../../modules/workers"

  name           = local.name
  cluster_name   = module.ecs_cluster.cluster_name
  vpc_id         = module.network.vpc_id
  vpc_cidr_block = module.network.vpc_cidr_block
  subnet_ids     = module.network.private_subnet_ids

  image        = var.image
  cpu          = var.workers.cpu
  memory       = var.workers.memory
  min_capacity = var.workers.min_capacity
  max_capacity = var.workers.max_capacity

  environment_variables = local.app_environment
  secrets               = local.app_secrets
  secrets_kms_key_arn   = module.secrets.kms_key_arn
  task_policy_arns      = local.recordings_policy_arns

  log_group_name = module.observability.log_group_names["worker"]
  log_group_arn  = module.observability.log_group_arns["worker"]
  tags           = local.tags
}

module "media" {
  source = "../../modules/media"

  name              = local.name
  vpc_id            = module.network.vpc_id
  vpc_cidr_block    = module.network.vpc_cidr_block
  public_subnet_ids = module.network.public_subnet_ids

  image         = var.image
  instance_type = var.media.instance_type
  min_size      = var.media.min_size
  max_size      = var.media.max_size
  max_calls     = var.media.max_calls

  environment_variables = merge(local.recordings_environment, {
    KEFU_PUBLIC_URL  = var.public_url
    KEFU_ICE_SERVERS = module.coturn.stun_urls
  })
  # Media nodes never use the database (docs/media-nodes.md): the module
  # gives them placeholder URLs, not these credentials.
  secrets = merge(local.metrics_secrets, {
    KEFU_REDIS_URL       = local.secret.redis_url
    KEFU_JWT_PRIVATE_KEY = local.secret.jwt_private_key
  })
  secrets_kms_key_arn  = module.secrets.kms_key_arn
  instance_policy_arns = local.recordings_policy_arns

  log_group_name = module.observability.log_group_names["media"]
  log_group_arn  = module.observability.log_group_arns["media"]
  tags           = local.tags
}

module "coturn" {
  source = "../../modules/coturn"

  name                = local.name
  vpc_id              = module.network.vpc_id
  public_subnet_ids   = module.network.public_subnet_ids
  instance_count      = var.coturn_instance_count
  realm               = var.turn_realm
  turn_secret_arn     = local.secret.turn_secret
  secrets_kms_key_arn = module.secrets.kms_key_arn
  log_group_name      = module.observability.log_group_names["coturn"]
  log_group_arn       = module.observability.log_group_arns["coturn"]
  tags                = local.tags
}
