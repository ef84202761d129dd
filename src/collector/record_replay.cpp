// Replaying recordings: the live set and each chip's figures in time order.
#include "collector/recording.h"

#include <algorithm>
#include <set>

#include "collector/cb_coverage.h"

namespace ttmem::collector {

namespace pr = protocol;
namespace rf = protocol::record;

// ---------------------------------------------------------------------------------------------
// Replay: the live set and each chip's figures, exact at every checkpoint (see recording.h).

LiveKey key_of(const RecordedBuffer& b) {
  const bool cb = b.record.kind == uint8_t(Kind::Cb);
  return {b.process, b.device, uint8_t(cb), b.record.buffer_id, cb ? b.record.address : 0,
          cb ? b.record.aux : 0};
}

namespace {

bool same_buffer(const RecordedBuffer& a, const RecordedBuffer& b) {
  return a.record.kind == b.record.kind && a.record.address == b.record.address &&
         a.record.size == b.record.size && a.record.time_ns == b.record.time_ns;
}

class ReplayEngine {
 public:
  ReplayEngine(const Recording& r, ReplayVisitor& v) : r_(r), v_(v) {}

  // Applies everything up to and including `until_ns`, from where the last run stopped.
  void run(uint64_t until_ns) {
    auto& c = next_checkpoint_;
    for (; next_event_ < r_.events.size(); ++next_event_) {
      const auto& e = r_.events[next_event_];
      if (e.time_ns > until_ns) break;
      // Events at or before a checkpoint's time are in it (its time is taken before the read).
      while (c < r_.checkpoints.size() && r_.checkpoints[c].time_ns < e.time_ns) {
        apply_checkpoint(r_.checkpoints[c++]);
      }
      apply(e);
    }
    while (c < r_.checkpoints.size() && r_.checkpoints[c].time_ns <= until_ns) {
      apply_checkpoint(r_.checkpoints[c++]);
    }
  }

  std::vector<RecordedBuffer> live() const {
    std::vector<RecordedBuffer> out;
    out.reserve(live_.size());
    for (const auto& [k, b] : live_) out.push_back(b);
    return out;
  }

 private:
  RecordedBuffer from_event(const Recording::Event& e) const {
    const pr::EventRecord& ev = e.event;
    RecordedBuffer b;
    b.process = e.process;
    b.device = e.device;
    b.record = pr::record_of(e.device, ev);
    b.reserved = r_.reserved_of(e.process, e.device, ev.kind, ev.size, ev.size_per_bank,
                                ev.num_cores);
    return b;
  }

  uint64_t chip_of(uint32_t process, uint32_t device) {
    auto [it, added] = chips_.try_emplace({process, device}, 0);
    if (added) {
      it->second = r_.chip_id(process, device);
      auto slot = r_.devices.find({process, device});
      if (slot != r_.devices.end()) cb_base_[it->second] = slot->second.unreserved_base;
    }
    return it->second;
  }

  void add(const RecordedBuffer& b, uint64_t t) {
    const LiveKey k = key_of(b);
    live_.insert_or_assign(k, b);
    v_.begin(b, t);
    touch(b, k, true);
  }

  void remove(std::map<LiveKey, RecordedBuffer>::iterator it, uint64_t t) {
    v_.end(it->second, t);
    touch(it->second, it->first, false);
    live_.erase(it);
  }

  // Keeps the chip's figure for the buffer's kind; published by publish().
  void touch(const RecordedBuffer& b, const LiveKey& k, bool added) {
    const uint64_t chip = chip_of(b.process, b.device);
    if (k.cb) {
      if (added) {
        cbs_[chip].insert(k);
      } else {
        cbs_[chip].erase(k);
      }
      cb_changed_.insert(chip);
      return;
    }
    uint64_t& bytes = figures_[{chip, b.record.kind}];
    bytes = added ? bytes + b.reserved : bytes - std::min(bytes, b.reserved);
    changed_.insert({chip, b.record.kind});
  }

  void publish(uint64_t t) {
    for (const auto& ck : changed_) v_.usage(t, ck.first, ck.second, figures_[ck]);
    changed_.clear();
    for (uint64_t chip : cb_changed_) {
      CbCoverage coverage;
      for (const LiveKey& k : cbs_[chip]) {
        const RecordedBuffer& b = live_.at(k);
        coverage.add(core_rect_of(b.record.aux), b.record.address + b.record.size);
      }
      const uint64_t covered = coverage.covered_bytes(cb_base_[chip]);
      uint64_t& last = figures_[{chip, uint32_t(Kind::Cb)}];
      if (covered != last || coverage.empty()) {
        last = covered;
        v_.usage(t, chip, uint32_t(Kind::Cb), covered);
      }
    }
    cb_changed_.clear();
  }

  // Removes the CB records of (process, device), of one program or of all.
  void free_cbs(uint32_t process, uint32_t device, std::optional<uint64_t> program, uint64_t t) {
    auto it = live_.lower_bound({process, device, 1, program.value_or(0), 0, 0});
    while (it != live_.end() && it->first.process == process && it->first.device == device &&
           it->first.cb == 1 && (!program || it->first.id == *program)) {
      auto next = std::next(it);
      remove(it, t);
      it = next;
    }
  }

  void apply(const Recording::Event& e) {
    const pr::EventRecord& ev = e.event;
    switch (pr::EventType(ev.type)) {
      case pr::EventType::Alloc:
      case pr::EventType::CbAlloc: {
        RecordedBuffer b = from_event(e);
        auto it = live_.find(key_of(b));
        if (it != live_.end()) {
          if (same_buffer(it->second, b)) return;  // already live from a checkpoint
          remove(it, e.time_ns);
        }
        add(b, e.time_ns);
        break;
      }
      case pr::EventType::Free: {
        auto it = live_.find({e.process, e.device, 0, ev.buffer_id, 0, 0});
        if (it == live_.end()) return;
        remove(it, e.time_ns);
        break;
      }
      case pr::EventType::CbFreeAll:
        free_cbs(e.process, e.device, std::nullopt, e.time_ns);
        break;
      case pr::EventType::CbFreeProgram:
        free_cbs(e.process, e.device, ev.buffer_id, e.time_ns);
        break;
    }
    publish(e.time_ns);
  }

  void apply_checkpoint(const Recording::Checkpoint& cp) {
    std::map<LiveKey, const RecordedBuffer*> exact;
    std::set<uint32_t> present;
    for (const auto& b : cp.buffers) {
      exact.emplace(key_of(b), &b);
      present.insert(b.process);
    }
    // A process that ended holding buffers leaves the live state when it is reaped, so later
    // checkpoints lack them; they are its leaks and stay in the figures to the end.
    auto leaked = [&](uint32_t process) {
      return !present.count(process) && r_.processes[process].leaked > 0;
    };
    for (auto it = live_.begin(); it != live_.end();) {
      auto want = exact.find(it->first);
      auto next = std::next(it);
      // (CBs are not leaks: they end with their program.)
      const bool stale = want == exact.end() ? it->first.cb || !leaked(it->first.process)
                                             : !same_buffer(it->second, *want->second);
      if (stale) remove(it, cp.time_ns);
      it = next;
    }
    for (const auto& [k, b] : exact) {
      if (!live_.count(k)) add(*b, cp.time_ns);
    }
    publish(cp.time_ns);
  }

  const Recording& r_;
  ReplayVisitor& v_;
  size_t next_event_ = 0, next_checkpoint_ = 0;
  std::map<LiveKey, RecordedBuffer> live_;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> chips_;  // (process, device) -> chip id
  std::map<uint64_t, uint64_t> cb_base_;                     // chip -> unreserved L1 base
  std::map<std::pair<uint64_t, uint32_t>, uint64_t> figures_;  // (chip, kind) -> bytes
  std::set<std::pair<uint64_t, uint32_t>> changed_;
  std::map<uint64_t, std::set<LiveKey>> cbs_;  // chip -> its live CB records
  std::set<uint64_t> cb_changed_;
};

}  // namespace

uint64_t recording_start_ns(const Recording& r) {
  return r.checkpoints.empty() ? r.header.created_monotonic_ns
                               : std::min(r.header.created_monotonic_ns,
                                          r.checkpoints.front().time_ns);
}

std::vector<RecordedBuffer> replay(const Recording& r, ReplayVisitor& visitor) {
  ReplayEngine engine(r, visitor);
  engine.run(UINT64_MAX);
  return engine.live();
}

std::vector<RecordedBuffer> state_at(const Recording& r, uint64_t time_ns,
                                     ReplayVisitor& visitor) {
  ReplayEngine engine(r, visitor);
  engine.run(time_ns);
  return engine.live();
}

std::vector<RecordedBuffer> state_at(const Recording& r, uint64_t time_ns) {
  ReplayVisitor nothing;
  return state_at(r, time_ns, nothing);
}

std::vector<std::vector<RecordedBuffer>> states_at(const Recording& r,
                                                   const std::vector<uint64_t>& times_ns) {
  ReplayVisitor nothing;
  ReplayEngine engine(r, nothing);
  std::vector<std::vector<RecordedBuffer>> out;
  for (uint64_t t : times_ns) {
    engine.run(t);
    out.push_back(engine.live());
  }
  return out;
}

}  // namespace ttmem::collector
