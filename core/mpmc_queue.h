// MpmcQueue<T>: a bounded, lock-free, multi-producer multi-consumer FIFO — the spine of the
// signing pipeline, between the I/O loops that push signing jobs and the signer workers that
// pop them in batches.
//
// Lock-free so an I/O loop never waits behind a worker (or a worker preempted while holding
// a lock); bounded so a burst becomes back-pressure (TryPush returns false) instead of memory.
// The design is the classic sequence-numbered ring: each cell carries a sequence counter that
// says whether it is free for the producer of ticket `pos` (seq == pos) or holds the item for
// the consumer of ticket `pos` (seq == pos + 1). A producer or consumer claims a ticket with
// one CAS on its own index, then hands the cell over with one release store; the two indices
// sit on separate cache lines so producers and consumers do not invalidate each other.
//
// Thread safety: every member may be called from any number of threads at once. TryPush,
// TryPop and TryPopBatch never block. FIFO holds per producer; items of different producers
// interleave. Items still queued at destruction are destroyed with the queue.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace sigil {

template <typename T>
class MpmcQueue {
 public:
  // Capacity is `min_capacity` rounded up to a power of two (at least 2), so a ticket maps to
  // its cell with a mask.
  explicit MpmcQueue(size_t min_capacity)
      : capacity_(std::bit_ceil(min_capacity < 2 ? size_t{2} : min_capacity)),
        mask_(capacity_ - 1),
        cells_(new Cell[capacity_]) {
    for (size_t i = 0; i < capacity_; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }

  ~MpmcQueue() {
    while (TryPop()) {
    }
  }

  MpmcQueue(const MpmcQueue&) = delete;
  MpmcQueue& operator=(const MpmcQueue&) = delete;

  // False when the queue is full; `item` is then left untouched.
  bool TryPush(T&& item) { return Emplace(std::move(item)); }
  bool TryPush(const T& item) requires std::is_copy_constructible_v<T> { return Emplace(item); }

  std::optional<T> TryPop() {
    size_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    Cell* cell;
    while (true) {
      cell = &cells_[pos & mask_];
      const size_t seq = cell->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + 1);
      if (diff == 0) {
        if (dequeue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        return std::nullopt;  // the producer of this ticket has not finished: empty
      } else {
        pos = dequeue_pos_.load(std::memory_order_relaxed);
      }
    }
    T* slot = std::launder(reinterpret_cast<T*>(cell->storage));
    std::optional<T> item(std::move(*slot));
    slot->~T();
    cell->seq.store(pos + capacity_, std::memory_order_release);
    return item;
  }

  // Appends up to `max` items to `out`; returns how many. Never blocks.
  size_t TryPopBatch(std::vector<T>& out, size_t max) {
    size_t n = 0;
    while (n < max) {
      std::optional<T> item = TryPop();
      if (!item) break;
      out.push_back(std::move(*item));
      ++n;
    }
    return n;
  }

  size_t capacity() const { return capacity_; }

  // A snapshot that may be stale by the time it is read: for metrics and heuristics only.
  size_t ApproxSize() const {
    const size_t tail = enqueue_pos_.load(std::memory_order_relaxed);
    const size_t head = dequeue_pos_.load(std::memory_order_relaxed);
    return tail > head ? tail - head : 0;
  }

 private:
  static constexpr size_t kCacheLine = 64;

  struct Cell {
    std::atomic<size_t> seq;
    alignas(T) unsigned char storage[sizeof(T)];
  };

  template <typename U>
  bool Emplace(U&& item) {
    size_t pos = enqueue_pos_.load(std::memory_order_relaxed);
    Cell* cell;
    while (true) {
      cell = &cells_[pos & mask_];
      const size_t seq = cell->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);
      if (diff == 0) {
        if (enqueue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        return false;  // the consumer of the previous lap has not freed this cell: full
      } else {
        pos = enqueue_pos_.load(std::memory_order_relaxed);
      }
    }
    new (cell->storage) T(std::forward<U>(item));
    cell->seq.store(pos + 1, std::memory_order_release);
    return true;
  }

  const size_t capacity_;
  const size_t mask_;
  std::unique_ptr<Cell[]> cells_;
  alignas(kCacheLine) std::atomic<size_t> enqueue_pos_{0};
  alignas(kCacheLine) std::atomic<size_t> dequeue_pos_{0};
  char pad_[kCacheLine - sizeof(std::atomic<size_t>)];  // keeps the next object off this line
};

}  // namespace sigil
