# Desired state of build-07.
# Owner: infra team. Do not reformat: the alignment below is deliberate.

/* Shared values.
   Block comments survive too. */
locals {
  rg    = ">= 14.0"   # ripgrep floor
  common = { log = "info" } // trailing slash comment
}

# --- editors ---------------------------------------------------------------
package "vim" {}   # the one true editor

# nano stays out
package "nano" {
  ensure = "absent"   # removed on sight
}

# --- tools -----------------------------------------------------------------

package "ripgrep" {
  # pinned: 14.1 broke the CI parser
  version   =   local.rg
  hold = true  # never upgrade in place
}

package "nginx" {
  options = merge(local.common, {
    worker_processes = 4 # per core
  })
}

# end of file: keep me
