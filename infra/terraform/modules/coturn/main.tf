# coturn TURN servers: a fixed group of EC2 instances, each with an Elastic IP
# (TURN clients and relayed peers need a stable public address; an
# allocation's relay address is the instance's own).  The shared secret is
# read from Secrets Manager at start, never written here.
#
# TURN over TLS (turns:, 5349) needs a certificate on the instances and is not
# set up here; browsers use turn: over UDP and TCP 3478.

data "aws_region" "current" {}

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  ami_id = var.ami_id != "" ? var.ami_id : nonsensitive(data.aws_ssm_parameter.al2023.value)

  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    region          = data.aws_region.current.name
    image           = var.image
    realm           = var.realm
    min_port        = var.relay_port_range.from
    max_port        = var.relay_port_range.to
    turn_secret_arn = var.turn_secret_arn
    log_group_name  = var.log_group_name
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

resource "aws_iam_role" "coturn" {
  name               = "${var.name}-coturn"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "coturn" {
  statement {
    sid       = "ReadTurnSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.turn_secret_arn]
  }

  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${var.log_group_arn}:*"]
  }
}

resource "aws_iam_role_policy" "coturn" {
  name   = "secret-logs"
  role   = aws_iam_role.coturn.id
  policy = data.aws_iam_policy_document.coturn.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.coturn.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "coturn" {
  name = "${var.name}-coturn"
  role = aws_iam_role.coturn.name

  tags = var.tags
}

# --- network ----------------------------------------------------------------------------

resource "aws_security_group" "coturn" {
  name        = "${var.name}-coturn"
  description = "coturn: TURN on 3478 (UDP, TCP) and the relay ports from anywhere"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-coturn" })
}

resource "aws_vpc_security_group_ingress_rule" "coturn" {
  for_each = {
    turn_udp = { protocol = "udp", from = 3478, to = 3478 }
    turn_tcp = { protocol = "tcp", from = 3478, to = 3478 }
    relay    = { protocol = "udp", from = var.relay_port_range.from, to = var.relay_port_range.to }
  }

  security_group_id = aws_security_group.coturn.id
  description       = each.key
  ip_protocol       = each.value.protocol
  from_port         = each.value.from
  to_port           = each.value.to
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "coturn" {
  for_each = {
    # Relayed media to browsers and media nodes (private ranges are refused
    # by coturn's denied-peer-ip), STUN answers.
    udp   = { protocol = "udp", from = 0, to = 65535 }
    https = { protocol = "tcp", from = 443, to = 443 }
  }

  security_group_id = aws_security_group.coturn.id
  description       = each.key
  ip_protocol       = each.value.protocol
  from_port         = each.value.from
  to_port           = each.value.to
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

# --- instances ----------------------------------------------------------------------------

resource "aws_instance" "coturn" {
  count = var.instance_count

  ami                    = local.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.public_subnet_ids[count.index % length(var.public_subnet_ids)]
  vpc_security_group_ids = [aws_security_group.coturn.id]
  iam_instance_profile   = aws_iam_instance_profile.coturn.name
  user_data_base64       = base64encode(local.user_data)
  monitoring             = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_size = 20
    volume_type = "gp3"
    encrypted   = true
    tags        = merge(var.tags, { Name = "${var.name}-coturn-${count.index}" })
  }

  tags = merge(var.tags, { Name = "${var.name}-coturn-${count.index}", Role = "coturn" })

  lifecycle {
    ignore_changes = [ami]
  }
}

resource "aws_eip" "coturn" {
  count = var.instance_count

  domain   = "vpc"
  instance = aws_instance.coturn[count.index].id

  tags = merge(var.tags, { Name = "${var.name}-coturn-${count.index}" })
}
