// The current thread's real stack position for the chat template's recursion guard. A Swift local's
// address is not one under AddressSanitizer, which moves addressable locals to a heap "fake stack"
// (use-after-return detection); the frame address stays on the thread's stack.
#pragma once
#include <stdint.h>

static inline uintptr_t edgeai_stack_pointer(void) {
    return (uintptr_t)__builtin_frame_address(0);
}
