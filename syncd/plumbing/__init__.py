"""What every room stands on and none of them is about: the database engine and its error texts (`db`), the
run lock (`lock`), the state directory (`statedir`), logging (`logs`), systemd's notify socket
(`notify`), memory release (`memory`), progress lines (`progress`), the download pipe
(`pipe`) and the reader's thread (`readahead`)."""
