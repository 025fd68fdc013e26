# want: bat curl fd git jq postgresql tmux
// A workstation profile written the way terraform users write HCL.

/*
 * Shared values. Locals are visible only in this file.
 */
locals {
  cli_floor = ">= 1.0"
  pg_major  = 16
  env       = "prod"
  hooks = {
    log_level = "info"
    retries   = 3
    verbose   = false
  }
}

package "git" {}
package "curl" { hold = true }

package "jq" {
  version = local.cli_floor
}

package "bat" {
  version = "${local.cli_floor}, < 2"
  repo    = "extra"
}

package "fd" {
  version = local.env == "prod" ? "= 9.0.0" : null
}

package "tmux" {
  ensure = "absent"
}

package "postgresql" {
  version = format(">= %d, < %d", local.pg_major, local.pg_major + 1)
  hold    = true
  options = merge(local.hooks, {
    data_dir = "/srv/pg/${local.pg_major}"
    tuning   = upper(local.env)
    conf     = <<-EOT
      shared_buffers = 1GB
      max_connections = 200
    EOT
  })
}
