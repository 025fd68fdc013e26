# A state file with one problem of each kind the renderer must draw.
locals {
	major = 14 # a tab before the name
}

package "ripgrep" {
	version = local.mjor
}

package "nginx" {
  options = { "café" = "ok", bad = ["list"] }
  verison = "1"
}

package "nano" { ensure = "absnet" }

package "vim" {
  options = merge(
    { a = 1 },
    { b = [2] },
  )
}

package "nginx" {}
