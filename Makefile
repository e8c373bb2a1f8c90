# amesh top-level Makefile: a thin wrapper over CMake + Ninja.
# `make demo` and `make test` are the two set-up commands of the README;
# both install missing Debian packages first (tools/install-deps.sh).

BUILD      ?= build
PREFIX     ?= /usr/local
DESTDIR    ?=
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
GEN        := -G Ninja

.PHONY: all deps build asan tsan test unit integration fuzz-replay demo demo-kube bench clean format \
        lint fresh-check install images kube

all: build

deps:
	@tools/install-deps.sh

# Release-style build used by the demo and the benchmarks.
build: deps
	@cmake -S . -B $(BUILD) $(GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD)

# Test build: ASan + UBSan, -Werror.
asan: deps
	@cmake -S . -B $(ASAN_BUILD) $(GEN) -DCMAKE_BUILD_TYPE=Debug -DMESH_SANITIZE=ON -DMESH_WERROR=ON >/dev/null
	@cmake --build $(ASAN_BUILD)

# The ThreadSanitizer tier, -Werror: only what its tests need is built (target tsan-tier:
# ztunnel, meshd, the threaded unit tests), then `ctest -L tsan` runs them; a race fails.
tsan: deps
	@cmake -S . -B $(TSAN_BUILD) $(GEN) -DCMAKE_BUILD_TYPE=Debug -DMESH_SANITIZE=thread -DMESH_WERROR=ON >/dev/null
	@cmake --build $(TSAN_BUILD) --target tsan-tier
	@cd $(TSAN_BUILD) && ctest --output-on-failure -L tsan --timeout 900

# Every tier: unit (cmocka), fuzz corpus replay, integration (network namespaces, root).
# The release build (make demo's) is built too: gcc -O2 finds warnings (maybe-uninitialized,
# format-truncation) the Debug build does not, and -Werror turns them into a broken demo.
# The `kube` tier needs the real kube-apiserver: built once into /var/cache/amesh (about 4 min
# cold on 2 cores), then found in the cache.
test: asan build
	@tools/lint.sh
	@tools/install-deps.sh kube
	@tools/install-deps.sh images
	@tools/kube/build.sh
	@cd $(ASAN_BUILD) && ctest --output-on-failure --timeout 1500
	@$(MAKE) --no-print-directory tsan

# kube-apiserver, kube-controller-manager, kube-scheduler v1.20.2 from Debian's kubernetes
# source package, into $${AMESH_KUBE_CACHE:-/var/cache/amesh/kube-v1.20.2}/bin (tools/kube/build.sh).
kube:
	@tools/install-deps.sh kube
	@tools/kube/build.sh

unit: asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -L unit

fuzz-replay: asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -L fuzz

integration: asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -L integration

# The programs into $(DESTDIR)$(PREFIX)/bin (and the samples, see CMakeLists.txt). Or use
# them in place: export PATH=$$PWD/build/bin:$$PATH
install: build
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

demo: build
	@tools/demo.sh $(BUILD)

# The same narrative against a real Kubernetes control plane (meshctl install --kubernetes,
# kubectl): the first run builds kube-apiserver & co. into the cache (minutes, `make kube`).
demo-kube: build
	@tools/install-deps.sh kube
	@tools/demo-kube.sh $(BUILD)

# `make demo` on a minimal Debian 12 root made from this machine's apt sources: fails when
# a package the project needs is missing from tools/install-deps.sh (root; see the script).
fresh-check:
	@tools/install-deps.sh fresh-check
	@tools/fresh-check.sh

# Container images of meshd, ztunnel, mesh-cni and the waypoint, built offline (buildah FROM
# scratch: the binaries and their Debian libraries): build/images/NAME.tar (docker-archive)
# and NAME-oci.tar. See README, "Install on Kubernetes".
images: build
	@tools/install-deps.sh images
	@tools/images.sh $(BUILD) $(BUILD)/images

bench: build
	@bench/run.sh $(BUILD)

format:
	@tools/format.sh

lint:
	@tools/lint.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
