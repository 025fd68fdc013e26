# The example machine: what `make demo` applies into a throw-away root.
# Every package block declares one package; dependencies come by themselves.

package "hello" {
  version = "= 1.0.0" # pinned: the demo lifts the pin to show an upgrade
}

package "motd" {
  options = {
    message = "Welcome to a machine managed by packets."
  }
}
