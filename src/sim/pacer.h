// Paces a scenario in scaled time: pause(s) sleeps s / speed seconds, and never with speed 0
// (tests run as fast as possible). hold() sleeps in real time whatever the speed, so a viewer or
// a test can look at a state for as long as it asked.
#pragma once

#include <chrono>
#include <thread>

namespace ttmem::sim {

class Pacer {
 public:
  explicit Pacer(double speed) : speed_(speed) {}

  void pause(double seconds) const {
    if (speed_ > 0 && seconds > 0) sleep(seconds / speed_);
  }
  static void hold(double seconds) {
    if (seconds > 0) sleep(seconds);
  }
  bool paced() const { return speed_ > 0; }

 private:
  static void sleep(double seconds) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
  double speed_;
};

}  // namespace ttmem::sim
