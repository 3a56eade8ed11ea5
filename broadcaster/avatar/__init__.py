"""Local LiveAvatar-compatible avatar service: API, control socket, renderer, publisher."""
