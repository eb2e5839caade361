terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # Keep state remote, encrypted and locked in a real environment, e.g.:
  #
  # backend "s3" {
  #   bucket         = "acme-terraform-state"
  #   key            = "kefu/production.tfstate"
  #   region         = "eu-west-1"
  #   encrypt        = true
  #   dynamodb_table = "terraform-locks"
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Environment = var.environment
      Project     = "kefu"
      ManagedBy   = "terraform"
    }
  }
}
