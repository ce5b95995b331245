// The spawn every spawn benchmark measures: /bin/true in a new user namespace with uid and gid map
// "0 100000 65536", setgroups denied, stdio ignored. The C floor (spawn-floor.h) does what this call must do;
// change both together.
export const measuredSpawnOptions = {
  namespaces: ["user"],
  uidMap: "0 100000 65536",
  gidMap: "0 100000 65536",
  setgroups: "deny",
  stdio: "ignore",
};
