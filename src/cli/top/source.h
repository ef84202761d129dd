// Where the monitor's snapshots come from: the local segment directory (a collector of its
// own), or a ttmemd's HTTP API, named with --server or found through the legacy socket the way
// the allocation-server prototype's monitor found its server.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "collector/snapshot.h"

namespace ttmem::top {

class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  // Takes a new snapshot now.
  virtual void refresh() = 0;
  // Waits up to timeout_ms for something to change (a local collector wakes on segment events;
  // a daemon is asked again when the time is up), then takes a new snapshot.
  virtual void wait(int timeout_ms) = 0;
  virtual const collector::Snapshot& snapshot() const = 0;
  // Whether snapshots from the next refresh on list buffers (Snapshot::buffers). Only the views
  // that show buffers need them: listing a million of them costs far more than a refresh.
  virtual void set_list_buffers(bool list) = 0;
  virtual bool lists_buffers() const = 0;
  // Where the last snapshot came from when the header should say so ("via ttmemd"), else "".
  virtual std::string label() const { return ""; }
};

// The HTTP URL of the ttmemd listening on the legacy socket at `path`, asked with ttmem's
// SERVER_URL_QUERY; nullopt when nothing listens there, or the server does not answer within
// timeout_ms (the prototype's own server never answers that question).
std::optional<std::string> find_ttmemd(const std::string& path, int timeout_ms = 500);

// The source the monitor reads: --server if given; else the ttmemd found on `legacy_socket`
// unless a segment directory was chosen (--dir or $TTMEM_DIR); else the local directory. With
// `ask_daemon`, a directory a ttmemd serves (collector/daemon_file.h) is shown as that ttmemd
// sees it while no buffers are listed: it keeps the fold up to date anyway, and each viewer
// folding a Galaxy host's million buffers again costs more than asking. Throws cli::CliError.
std::unique_ptr<SnapshotSource> open_source(const cli::GlobalOptions& global,
                                            const std::string& legacy_socket, bool ask_daemon);

}  // namespace ttmem::top
