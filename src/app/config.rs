//! Settings and services.yaml as the app uses them: reloads, errors, the registry, entries and tag discovery.

use super::*;

impl<C: CloudControl> App<C> {
    /// A config file changed on disk: use it if valid; otherwise keep the
    /// last valid version and report the error (the file is not touched).
    pub fn config_changed(&self, path: &Path) {
        if path == self.registry_file.path() {
            let (registry, error) = self.registry_file.current();
            self.sync_timeouts(&registry);
            self.config_error(ConfigFile::Services, error.map(|e| e.to_string()));
        } else if path == self.settings_file {
            match load_settings_file(path) {
                Ok((new, warnings)) => {
                    for w in warnings {
                        tracing::warn!("{w}");
                    }
                    self.apply(new);
                    self.config_error(ConfigFile::Settings, None);
                }
                Err(e) => self.config_error(ConfigFile::Settings, Some(e.to_string())),
            }
        }
    }

    pub(super) fn config_error(&self, file: ConfigFile, error: Option<String>) {
        let mut state = self.lock();
        let changed = state.config_errors.get(&file) != error.as_ref();
        match error {
            Some(error) if changed => {
                tracing::error!(
                    "{error}\n{} is invalid: the last valid version stays in use",
                    file.name()
                );
                state.config_errors.insert(file, error.clone());
                self.emit(Event::ConfigError { file, error });
            }
            None if state.config_errors.remove(&file).is_some() => {
                tracing::info!("{} is valid again", file.name());
                self.emit(Event::ConfigOk { file });
            }
            _ => {}
        }
    }

    /// Switches to new, valid settings. Idle timing, notifications, regions,
    /// profile and endpoint apply at once; the rest needs a restart.
    pub(super) fn apply(&self, new: Settings) {
        let mut state = self.lock();
        let current = state.settings.clone();
        if *current == new {
            return;
        }
        if idle_config(&current) != idle_config(&new) {
            state.tracker.set_config(idle_config(&new));
        }
        if current.aws != new.aws {
            self.manager.cloud().reconfigure(&new.aws);
        }
        let restart = needs_restart(&current, &new);
        if !restart.is_empty() {
            tracing::warn!(
                "settings.json: changes to {} take effect when cloudnap restarts",
                restart.join(", ")
            );
        }
        tracing::info!("settings.json reloaded");
        state.settings = Arc::new(new);
        let event = state.follow_inhibitors(now());
        drop(state);
        if let Some(event) = event {
            self.react(event, Trigger::Idle);
        }
    }

    /// Gives the idle tracker the timeouts of `registry` (the one in use).
    pub(super) fn sync_timeouts(&self, registry: &Registry) {
        let own = Self::own_timeouts(registry);
        let mut state = self.lock();
        if state.tracker.own_timeouts() != &own {
            state.tracker.set_timeouts(own);
        }
    }

    /// The registry in use: the last valid services.yaml.
    pub(super) fn registry(&self) -> Registry {
        let (registry, error) = self.registry_file.current();
        if let Some(e) = error {
            tracing::warn!("{e}; using the last valid services.yaml");
        }
        registry
    }

    /// What cloudnap manages: services.yaml, and the resources found by tag
    /// at the last search.
    pub(super) fn entries(&self) -> Vec<Entry> {
        let mut entries = self.registry().entries;
        let tagged: Vec<Entry> = (self.lock().tagged.iter())
            .filter(|t| !entries.iter().any(|e| e.id == t.id))
            .cloned()
            .collect();
        entries.extend(tagged);
        entries
    }

    /// Splits `entries` into this member's own and the team's (`shared`,
    /// with team mode on): the team's never sleep by this member's own
    /// sleep, nor get an AWS-side deadline (see [`Self::run_team`]).
    pub(super) fn split_shared(&self, entries: Vec<Entry>) -> (Vec<Entry>, Vec<Entry>) {
        let team = self.settings().team.is_some();
        entries.into_iter().partition(|e| !(team && e.shared))
    }

    /// Searches the configured regions for resources tagged
    /// `cloudnap:managed=true` (when `aws.tag_discovery` is on) and returns
    /// [`Self::entries`] with them.
    pub async fn discover(&self) -> Vec<Entry> {
        let aws = self.settings().aws.clone();
        let all = self
            .manager
            .with_tagged(self.registry().entries, &aws)
            .await;
        self.remember_tagged(&all);
        all
    }

    /// Sleeps what is due (see [`Self::run_for`]) of services.yaml and of
    /// the resources tagged `cloudnap:managed=true` as a new search finds
    /// them. The last search found none beyond services.yaml (the usual
    /// case): services.yaml's are slept while the search runs beside their
    /// look, what it finds after (see
    /// [`crate::manager::Manager::beside_search`]); else the search comes
    /// first, as a resource no longer tagged must not be stopped.
    pub(super) async fn sleep_searching(
        &self,
        only: Option<&[Duration]>,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let due = |all: Vec<Entry>| async move {
            let (entries, _) = self.split_shared(self.asleep_by_timeout(all, only));
            self.sleep_ordered(entries, trigger).await
        };
        if !self.lock().tagged.is_empty() {
            return due(self.discover().await).await;
        }
        let aws = self.settings().aws.clone();
        let (found, slept) = (self.manager)
            .beside_search(self.registry().entries, &aws, due)
            .await;
        self.remember_tagged(&found);
        slept
    }

    /// Keeps the tagged resources of `found` that services.yaml lacks, for
    /// [`Self::entries`].
    fn remember_tagged(&self, found: &[Entry]) {
        let registered = self.registry().entries;
        let tagged = (found.iter())
            .filter(|e| e.tagged && !registered.iter().any(|r| r.id == e.id))
            .cloned()
            .collect();
        self.lock().tagged = tagged;
    }

    /// Runs a services.yaml edit off the async workers (it fsyncs); returns
    /// the number of entries afterwards.
    pub(super) async fn edit_registry(
        &self,
        edit: impl FnOnce(&RegistryFile) -> Result<Registry, EditError> + Send + 'static,
    ) -> Result<usize, CommandError> {
        let file = self.registry_file.clone();
        let registry = tokio::task::spawn_blocking(move || edit(&file))
            .await
            .map_err(|e| CommandError::Registry(e.to_string()))?
            .map_err(|e| CommandError::Registry(e.to_string()))?;
        self.sync_timeouts(&registry);
        Ok(registry.entries.len())
    }

    /// The settings in use now.
    pub fn settings(&self) -> Arc<Settings> {
        self.lock().settings.clone()
    }
}
