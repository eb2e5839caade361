output "public_ips" {
  value = aws_eip.coturn[*].public_ip
}

output "turn_urls" {
  description = "KEFU_TURN_URLS for the API: every server over UDP and TCP."
  value = join(",", flatten([
    for ip in aws_eip.coturn[*].public_ip : ["turn:${ip}:3478?transport=udp", "turn:${ip}:3478?transport=tcp"]
  ]))
}

output "stun_urls" {
  description = "KEFU_ICE_SERVERS (STUN) for the API and media nodes: coturn answers STUN on 3478."
  value       = join(",", [for ip in aws_eip.coturn[*].public_ip : "stun:${ip}:3478"])
}

output "instance_ids" {
  value = aws_instance.coturn[*].id
}

output "security_group_id" {
  value = aws_security_group.coturn.id
}

