//! Windows access lists for the compile cache key, the counterpart of its mode 0600 elsewhere:
//! the key file is made readable by the account the host runs as and nobody else, and a key
//! whose list lets other accounts in is refused.

#![allow(unsafe_code)]

use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{GetNamedSecurityInfoW, SE_FILE_OBJECT, SetNamedSecurityInfoW};
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_REVISION, AddAccessAllowedAce, DACL_SECURITY_INFORMATION, EqualSid,
    GetAce, GetLengthSid, GetTokenInformation, InitializeAcl, IsWellKnownSid, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, PSID, TOKEN_QUERY, TOKEN_USER, TokenUser, WinBuiltinAdministratorsSid, WinLocalSystemSid,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// An entry that grants access (as opposed to denying it, or auditing).
const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
/// Every right on a file.
const FILE_ALL_ACCESS: u32 = 0x001F_01FF;

/// The account the host runs as: its token's user entry, which holds the SID.
struct CurrentAccount {
    /// `TOKEN_USER` and the SID after it; `u64`s for the alignment of its pointer.
    buffer: Vec<u64>,
}

impl CurrentAccount {
    fn get() -> io::Result<Self> {
        let mut token: HANDLE = null_mut();
        // SAFETY: the pseudo-handle of the current process needs no closing; `token` is written
        // only on success and closed below.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut length = 0u32;
        // SAFETY: asks only for the size needed (the call fails with the size written).
        unsafe { GetTokenInformation(token, TokenUser, null_mut(), 0, &mut length) };
        let mut buffer = vec![0u64; (length as usize).div_ceil(8).max(1)];
        // SAFETY: `buffer` holds `length` bytes, aligned for `TOKEN_USER`.
        let read = unsafe { GetTokenInformation(token, TokenUser, buffer.as_mut_ptr().cast(), length, &mut length) };
        let error = io::Error::last_os_error();
        // SAFETY: `token` was opened above and is not used after this.
        unsafe { CloseHandle(token) };
        if read == 0 {
            return Err(error);
        }
        Ok(Self { buffer })
    }

    fn sid(&self) -> PSID {
        // SAFETY: `buffer` holds the `TOKEN_USER` that `get` read; its SID points into `buffer`.
        unsafe { (*self.buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid }
    }
}

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

/// Replaces `path`'s access list by one entry, full control for the account the host runs as,
/// and stops it inheriting any entry from its folder.
pub fn make_private(path: &Path) -> io::Result<()> {
    let account = CurrentAccount::get()?;
    let sid = account.sid();
    // SAFETY: `sid` is a valid SID held by `account`.
    let size = size_of::<ACL>() + size_of::<ACCESS_ALLOWED_ACE>() + unsafe { GetLengthSid(sid) } as usize;
    let mut list = vec![0u64; size.div_ceil(8)];
    let acl = list.as_mut_ptr().cast::<ACL>();
    // SAFETY: `list` holds `size` bytes, enough for the header and one entry with this SID.
    let built = unsafe {
        InitializeAcl(acl, size as u32, ACL_REVISION) != 0
            && AddAccessAllowedAce(acl, ACL_REVISION, FILE_ALL_ACCESS, sid) != 0
    };
    if !built {
        return Err(io::Error::last_os_error());
    }
    let name = wide(path);
    // SAFETY: `name` is NUL-terminated; owner, group and audit list are left as they are.
    let status = unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            acl,
            null(),
        )
    };
    match status {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(code as i32)),
    }
}

/// Whether `path`'s access list lets in any account other than the host's own, the local system
/// and the administrators (who can read any file anyway). No list at all lets everyone in.
pub fn open_to_others(path: &Path) -> io::Result<bool> {
    let account = CurrentAccount::get()?;
    let name = wide(path);
    let mut acl: *mut ACL = null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `name` is NUL-terminated; `acl` points into `descriptor`, freed below.
    let status = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            null_mut(),
            null_mut(),
            &mut acl,
            null_mut(),
            &mut descriptor,
        )
    };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(status as i32));
    }
    let open = acl.is_null() || {
        // SAFETY: `acl` is the list `descriptor` holds.
        let count = unsafe { (*acl).AceCount };
        (0..u32::from(count)).any(|index| {
            let mut entry: *mut core::ffi::c_void = null_mut();
            // SAFETY: `index` is below the list's count; entries live as long as `descriptor`.
            if unsafe { GetAce(acl, index, &mut entry) } == 0 {
                return true;
            }
            // SAFETY: every entry starts with its header.
            let header = unsafe { &*entry.cast::<ACE_HEADER>() };
            if header.AceType != ACCESS_ALLOWED_ACE_TYPE {
                // Denials and audits let nobody in; other kinds of grant (object, callback) count
                // as open: the check errs on the side of refusing.
                return header.AceType > 3;
            }
            // SAFETY: an access-allowed entry's SID starts at `SidStart`.
            let sid: PSID = unsafe { (&raw mut (*entry.cast::<ACCESS_ALLOWED_ACE>()).SidStart).cast() };
            // SAFETY: both SIDs are valid for these calls.
            let trusted = unsafe {
                EqualSid(sid, account.sid()) != 0
                    || IsWellKnownSid(sid, WinLocalSystemSid) != 0
                    || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0
            };
            !trusted
        })
    };
    // SAFETY: `descriptor` was allocated by `GetNamedSecurityInfoW` and is not used after this.
    unsafe { LocalFree(descriptor) };
    Ok(open)
}
