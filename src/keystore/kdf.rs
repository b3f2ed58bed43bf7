//! Argon2id parameters, their bounds, and the one derivation per unlock.

use super::KeystoreError;
use crate::secret::Key32;
use secrecy::SecretBox;
use serde::{Deserialize, Serialize};

/// Argon2id cost parameters, stored in the keystore record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended option: 64 MiB, 3 passes, 4 lanes.
    pub const RECOMMENDED: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 4,
    };

    /// Upper bounds refused on read (and in the config): a tampered record must not become a
    /// DoS. 1 GiB and 10 passes are already 16x and 3x RFC 9106's recommendation.
    pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
    pub const MAX_T_COST: u32 = 10;
    pub const MAX_P_COST: u32 = 16;

    pub fn check_bounds(&self) -> Result<(), KeystoreError> {
        let err = |what: String| Err(KeystoreError::KdfOutOfBounds(what));
        if self.p_cost == 0 || self.p_cost > Self::MAX_P_COST {
            return err(format!("parallelism {} not in 1..={}", self.p_cost, Self::MAX_P_COST));
        }
        if self.t_cost == 0 || self.t_cost > Self::MAX_T_COST {
            return err(format!("iterations {} not in 1..={}", self.t_cost, Self::MAX_T_COST));
        }
        let min_m = 8 * self.p_cost;
        if self.m_cost_kib < min_m || self.m_cost_kib > Self::MAX_M_COST_KIB {
            return err(format!(
                "memory {} KiB not in {}..={}",
                self.m_cost_kib,
                min_m,
                Self::MAX_M_COST_KIB
            ));
        }
        Ok(())
    }

    /// Weaker than the recommended floor (allowed for tests and small devices; `doctor` says so).
    pub fn is_weak(&self) -> bool {
        self.m_cost_kib < Self::RECOMMENDED.m_cost_kib || self.t_cost < Self::RECOMMENDED.t_cost
    }

    pub(super) fn derive(&self, password: &[u8], salt: &[u8; 16]) -> Result<Key32, KeystoreError> {
        self.check_bounds()?;
        let params =
            argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32)).map_err(|_| KeystoreError::Kdf)?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Box::new([0u8; 32]);
        argon
            .hash_password_into(password, salt, out.as_mut())
            .map_err(|_| KeystoreError::Kdf)?;
        Ok(SecretBox::new(out))
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}
