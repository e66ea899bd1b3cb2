//! `fd_write` for WASI preview 1 guests that writes *every* buffer it is given.
//!
//! `fd_write` is `writev`: a guest passes a list of buffers. wasmtime-wasi's
//! preview 1 layer writes only the first non-empty one and reports a short
//! write, which POSIX allows, but guests in the wild ignore short writes:
//! AssemblyScript's `as-wasi` writes a line and its `\n` as two buffers, so
//! its lines run together and lose their newlines. A guest means all of its
//! buffers, so this shim writes them all, in order, retrying short writes.
//!
//! It shadows `wasi_snapshot_preview1::fd_write` in the linker and calls the
//! wasmtime-wasi implementation once per buffer, so descriptor handling
//! (renumbering, files, append mode, stdio streams) stays theirs.

use wasmtime::{AsContextMut, Caller, Extern, Linker};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::types::{self, Errno};
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1;
use wiggle::{GuestMemory, GuestPtr};

/// Size of a `ciovec` in guest memory: `{ buf: u32, buf_len: u32 }`.
const CIOVEC_SIZE: usize = 8;

/// Replaces `fd_write` in `linker` (which must already hold wasmtime-wasi's
/// preview 1 functions).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut WasiP1Ctx,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap_async(
        "wasi_snapshot_preview1",
        "fd_write",
        move |mut caller: Caller<'_, T>, (fd, iovs, iovs_len, nwritten): (i32, i32, i32, i32)| {
            Box::new(
                async move { fd_write_all(&mut caller, get, fd, iovs, iovs_len, nwritten).await },
            )
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

async fn fd_write_all<T>(
    caller: &mut Caller<'_, T>,
    get: fn(&mut T) -> &mut WasiP1Ctx,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("fd_write: the module does not export a memory named `memory`");
    };
    // wasmtime-wasi bounds what one host call may copy out of the guest by
    // "hostcall fuel", which its own wrappers set before each call: so do we.
    let fuel = caller.as_context_mut().hostcall_fuel();
    let (guest_memory, state) = memory.data_and_store_mut(caller);
    let ctx = get(state);

    // The iovec list and every buffer are guest-controlled: check each range.
    let buffers = match read_ciovecs(guest_memory, iovs as u32, iovs_len as u32) {
        Ok(buffers) => buffers,
        Err(errno) => return Ok(errno as i32),
    };

    let mut total: u32 = 0;
    // One ciovec at offset 0 pointing at the bytes behind it, in a host-side
    // scratch memory handed to wasmtime-wasi in place of the guest's.
    let mut scratch = Vec::new();
    'buffers: for (ptr, len) in buffers {
        let Some(bytes) = guest_memory.get(ptr as usize..ptr as usize + len as usize) else {
            return Ok(Errno::Fault as i32);
        };
        scratch.clear();
        scratch.extend_from_slice(&[0; CIOVEC_SIZE]);
        scratch.extend_from_slice(bytes);
        let mut done: u32 = 0;
        while done < len {
            scratch[0..4].copy_from_slice(&(CIOVEC_SIZE as u32 + done).to_le_bytes());
            scratch[4..8].copy_from_slice(&(len - done).to_le_bytes());
            let mut scratch_memory = GuestMemory::Unshared(&mut scratch);
            let one = GuestPtr::<[types::Ciovec]>::new((0, 1));
            ctx.set_hostcall_fuel(fuel);
            match ctx
                .fd_write(&mut scratch_memory, types::Fd::from(fd as u32), one)
                .await
            {
                // A zero-byte write makes no progress: report what was written.
                Ok(0) => break 'buffers,
                Ok(n) => {
                    done += n;
                    total = total.saturating_add(n);
                }
                Err(error) => match error.downcast() {
                    // Bytes already written stay written; report them as a
                    // short write, as `writev` does, and the error next time.
                    Ok(_) if total > 0 => break 'buffers,
                    Ok(errno) => return Ok(errno as i32),
                    Err(trap) => return Err(trap),
                },
            }
        }
    }

    let out = nwritten_ptr as u32 as usize;
    match guest_memory.get_mut(out..out + 4) {
        Some(slot) => slot.copy_from_slice(&total.to_le_bytes()),
        None => return Ok(Errno::Fault as i32),
    }
    Ok(Errno::Success as i32)
}

/// Reads `len` ciovecs at `ptr` as `(buf, buf_len)` pairs, skipping empty
/// ones, or `Fault` when the list or a buffer lies outside `memory`.
fn read_ciovecs(memory: &[u8], ptr: u32, len: u32) -> Result<Vec<(u32, u32)>, Errno> {
    let start = ptr as usize;
    let end = (len as usize)
        .checked_mul(CIOVEC_SIZE)
        .and_then(|size| start.checked_add(size))
        .ok_or(Errno::Fault)?;
    let list = memory.get(start..end).ok_or(Errno::Fault)?;
    let mut buffers = Vec::with_capacity(len as usize);
    for entry in list.chunks_exact(CIOVEC_SIZE) {
        let buf = u32::from_le_bytes(entry[0..4].try_into().unwrap());
        let buf_len = u32::from_le_bytes(entry[4..8].try_into().unwrap());
        if buf_len == 0 {
            continue;
        }
        let buf_end = (buf as usize)
            .checked_add(buf_len as usize)
            .ok_or(Errno::Fault)?;
        if buf_end > memory.len() {
            return Err(Errno::Fault);
        }
        buffers.push((buf, buf_len));
    }
    Ok(buffers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ciovec(buf: u32, len: u32) -> [u8; 8] {
        let mut out = [0; 8];
        out[..4].copy_from_slice(&buf.to_le_bytes());
        out[4..].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// The list is read in order, empty buffers skipped, and any range
    /// outside memory is a fault rather than a panic.
    #[test]
    fn ciovec_lists_are_bounds_checked() {
        let mut memory = vec![0u8; 64];
        memory[0..8].copy_from_slice(&ciovec(32, 5));
        memory[8..16].copy_from_slice(&ciovec(40, 0));
        memory[16..24].copy_from_slice(&ciovec(48, 1));
        assert_eq!(read_ciovecs(&memory, 0, 3), Ok(vec![(32, 5), (48, 1)]));
        // A buffer that runs past the end of memory.
        memory[0..8].copy_from_slice(&ciovec(60, 5));
        assert_eq!(read_ciovecs(&memory, 0, 1), Err(Errno::Fault));
        // A list that runs past the end of memory, or overflows.
        assert_eq!(read_ciovecs(&memory, 60, 1), Err(Errno::Fault));
        assert_eq!(read_ciovecs(&memory, u32::MAX, u32::MAX), Err(Errno::Fault));
        // A buffer whose end overflows the address space.
        memory[0..8].copy_from_slice(&ciovec(u32::MAX, u32::MAX));
        assert_eq!(read_ciovecs(&memory, 0, 1), Err(Errno::Fault));
    }
}
