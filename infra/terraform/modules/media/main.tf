# Media nodes (`kefu media`): an Auto Scaling group of EC2 instances with
# public addresses in the public subnets, one node per instance, running the
# Kefu image with host networking.  KEFU_NODE_ID is the instance id, so a node
# restarted on the same instance is recognised as a restart (docs/media-nodes.md).
#
# No draining yet: a node stopped with SIGTERM (scale-in, instance refresh)
# reports `stopped` and its calls end as `media_lost`.  Scale-in protection
# is left to the operator; refresh during low traffic (docs/operations.md).

data "aws_region" "current" {}

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  group_name = "${var.name}-media"
  ami_id     = var.ami_id != "" ? var.ami_id : nonsensitive(data.aws_ssm_parameter.al2023.value)

  # Production settings require database URLs, but a media node never
  # connects to the database (docs/media-nodes.md): it gets addresses on the
  # reserved .invalid domain instead of credentials.
  database_placeholders = {
    for key in ["KEFU_DATABASE_URL", "KEFU_PLATFORM_DATABASE_URL"] :
    key => "postgresql+asyncpg://unused@database.invalid/unused" if !contains(keys(var.secrets), key)
  }

  environment = merge(var.environment_variables, local.database_placeholders, {
    KEFU_MODE                 = "production"
    KEFU_HOST                 = "0.0.0.0"
    KEFU_PORT                 = tostring(var.health_port)
    KEFU_MEDIA_MAX_CALLS      = tostring(var.max_calls)
    KEFU_MEDIA_ALLOW_LOOPBACK = "0"
  })

  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    region         = data.aws_region.current.name
    image          = var.image
    environment    = local.environment
    secrets        = var.secrets
    log_group_name = var.log_group_name
    port_from      = var.rtp_port_range.from
    port_to        = var.rtp_port_range.to
  })
}

# --- role -------------------------------------------------------------------------------

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "media" {
  name               = local.group_name
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "media" {
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

resource "aws_iam_role_policy" "media" {
  name   = "pull-log-secrets"
  role   = aws_iam_role.media.id
  policy = data.aws_iam_policy_document.media.json
}

resource "aws_iam_role_policy_attachment" "media" {
  for_each = var.instance_policy_arns

  role       = aws_iam_role.media.name
  policy_arn = each.value
}

# Shell access through SSM Session Manager instead of an SSH port.
resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.media.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "media" {
  name = local.group_name
  role = aws_iam_role.media.name

  tags = var.tags
}

# --- network ----------------------------------------------------------------------------

resource "aws_security_group" "media" {
  name        = local.group_name
  description = "Media nodes: RTP/ICE over UDP from anywhere, /health from the VPC"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = local.group_name })
}

resource "aws_vpc_security_group_ingress_rule" "rtp" {
  security_group_id = aws_security_group.media.id
  description       = "ICE and SRTP from browsers and TURN relays"
  ip_protocol       = "udp"
  from_port         = var.rtp_port_range.from
  to_port           = var.rtp_port_range.to
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "health" {
  security_group_id = aws_security_group.media.id
  description       = "GET /health from inside the VPC"
  ip_protocol       = "tcp"
  from_port         = var.health_port
  to_port           = var.health_port
  cidr_ipv4         = var.vpc_cidr_block

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "media" {
  for_each = {
    # Media to browsers and relays, and STUN binding requests.
    udp   = { protocol = "udp", from = 0, to = 65535, cidr = "0.0.0.0/0" }
    https = { protocol = "tcp", from = 443, to = 443, cidr = "0.0.0.0/0" }
    redis = { protocol = "tcp", from = 6379, to = 6379, cidr = var.vpc_cidr_block }
  }

  security_group_id = aws_security_group.media.id
  description       = each.key
  ip_protocol       = each.value.protocol
  from_port         = each.value.from
  to_port           = each.value.to
  cidr_ipv4         = each.value.cidr

  tags = var.tags
}

# --- instances ----------------------------------------------------------------------------

resource "aws_launch_template" "media" {
  name_prefix            = "${local.group_name}-"
  image_id               = local.ami_id
  instance_type          = var.instance_type
  update_default_version = true
  user_data              = base64encode(local.user_data)

  iam_instance_profile {
    arn = aws_iam_instance_profile.media.arn
  }

  network_interfaces {
    associate_public_ip_address = true
    security_groups             = [aws_security_group.media.id]
    delete_on_termination       = true
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 30
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = local.group_name, Role = "media" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = local.group_name })
  }

  tag_specifications {
    resource_type = "network-interface"
    tags          = merge(var.tags, { Name = local.group_name })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "media" {
  name                      = local.group_name
  vpc_zone_identifier       = var.public_subnet_ids
  min_size                  = var.min_size
  max_size                  = var.max_size
  health_check_type         = "EC2"
  health_check_grace_period = 300
  default_instance_warmup   = 300
  enabled_metrics           = ["GroupInServiceInstances", "GroupDesiredCapacity", "GroupTerminatingInstances"]

  launch_template {
    id      = aws_launch_template.media.id
    version = aws_launch_template.media.latest_version
  }

  # A changed launch template replaces the nodes gradually; each replaced
  # node ends its calls (no draining yet).
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 90
      instance_warmup        = 300
    }
  }

  # default_tags do not reach Auto Scaling groups or their instances.
  dynamic "tag" {
    for_each = merge(var.tags, { Name = local.group_name, Role = "media" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    ignore_changes = [desired_capacity]
  }
}

resource "aws_autoscaling_policy" "cpu" {
  name                   = "${local.group_name}-cpu"
  autoscaling_group_name = aws_autoscaling_group.media.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    target_value = var.cpu_target_percent

    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
  }
}
