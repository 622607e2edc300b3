"""Golden scenarios of the control pipeline: a harness and recorded inputs."""
