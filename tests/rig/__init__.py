"""Real servers for tests and benchmarks: a private MariaDB and a private OpenSSH sshd."""
