/// Floodgate's version: the one place it is written. `floodgate --version`, the agent's `floodgate_build_info`
/// metric and the packages read it from here.
public let floodgateVersion = "0.3.0"
