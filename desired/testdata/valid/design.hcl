# want: htop nano nginx ripgrep
# The example of DESIGN.md §6, verbatim.
package "htop" {}

package "ripgrep" {
  version = ">= 14.0"      # constraint; absent means newest in the synced index
  hold    = true            # never upgrade in place
}

package "nano" {
  ensure = "absent"         # remove if present, and never install as a dependency
}

package "nginx" {
  options = { worker_processes = "4" }   # handed to the hooks as the table `options`
}
