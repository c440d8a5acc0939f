"""websh: a browser terminal on an instance, a PTY shell over SSH carried by a websocket, recorded as asciicast v2."""
