<?php
/**
 * Stand-ins of the Bitrix main module: the smallest surface syncd.settlements uses, with the kernel's
 * names and signatures. Sources (see /work/shared/domain/bitrix-module-facts.md):
 *  [R]  bziksv/riester bitrix/modules/... (main 22.500.700), [B24] alex-jazzman/bitrix24_source,
 *  [N]  nekolychy/bitrix24-local, [Z] zekuss/b-59, [S] shsm01/bkc_add.com; docs = dev.1c-bitrix.ru.
 * Not a copy of kernel code: behaviour written from those files and pages.
 */

namespace Bitrix\Main;

/** [B24 main/lib/error.php] __construct($message, $code = 0, $customData = null). */
class Error
{
    public function __construct(protected $message, protected $code = 0, protected $customData = null)
    {
    }

    public function getMessage() { return $this->message; }
    public function getCode() { return $this->code; }
    public function getCustomData() { return $this->customData; }
    public function __toString() { return (string)$this->message; }
}

class SystemException extends \Exception {}
class LoaderException extends \Exception {}
class ObjectException extends SystemException {}

/** [S main/lib/eventresult.php]: UNDEFINED 0, SUCCESS 1, ERROR 2. */
class EventResult
{
    public const UNDEFINED = 0;
    public const SUCCESS = 1;
    public const ERROR = 2;

    public function __construct(protected $type, protected $parameters = null, protected $moduleId = null, protected $handler = null)
    {
    }

    public function getType() { return $this->type; }
    public function getParameters() { return $this->parameters; }
    public function getModuleId() { return $this->moduleId; }
    public function getHandler() { return $this->handler; }
}

/** [Z main/lib/event.php] __construct($moduleId, $type, $parameters = array(), $filter = null). */
class Event
{
    /** @var EventResult[] */
    protected array $results = [];

    public function __construct(protected $moduleId, protected $type, protected $parameters = [], protected $filter = null)
    {
    }

    public function getParameter($key) { return $this->parameters[$key] ?? null; }
    public function getParameters() { return $this->parameters; }
    public function setParameter($key, $value) { $this->parameters[$key] = $value; }
    public function getModuleId() { return $this->moduleId; }
    public function getEventType() { return $this->type; }
    public function addResult(EventResult $result) { $this->results[] = $result; }
    public function getResults() { return $this->results; }

    public function send($sender = null)
    {
        EventManager::getInstance()->send($this);
    }
}

/**
 * [R main/lib/eventmanager.php]: a singleton; registerEventHandler() keeps a persistent handler (the
 * kernel: INSERT IGNORE into b_module_to_module with an md5 UNIQUE_ID; here: an array under the same
 * key); on send(), a persistent handler runs only if its module is installed, after
 * Loader::includeModule(), and only if class_exists(); it is called statically with the Event;
 * a non-null result that is not an EventResult is wrapped as EventResult(UNDEFINED, value, module).
 */
class EventManager
{
    protected static ?EventManager $instance = null;
    /** @var array<string, array{FROM: string, TYPE: string, TO_MODULE: string, CLASS: string, METHOD: string, SORT: int}> */
    public array $persistent = [];

    protected function __construct()
    {
    }

    public static function getInstance()
    {
        return self::$instance ??= new static();
    }

    public static function setInstance($instance)
    {
        self::$instance = $instance;
    }

    public function registerEventHandler($fromModuleId, $eventType, $toModuleId, $toClass = '', $toMethod = '', $sort = 100, $toPath = '', $toMethodArg = [])
    {
        $key = md5(strtoupper($fromModuleId) . '.' . strtoupper($eventType) . '.' . $toModuleId . '.' . $toPath . '.' . $toClass . '.' . $toMethod . '.' . serialize($toMethodArg));
        $this->persistent[$key] ??= [
            'FROM' => strtoupper($fromModuleId), 'TYPE' => strtoupper($eventType), 'TO_MODULE' => $toModuleId,
            'CLASS' => $toClass, 'METHOD' => $toMethod, 'SORT' => (int)$sort,
        ];
    }

    public function unRegisterEventHandler($fromModuleId, $eventType, $toModuleId, $toClass = '', $toMethod = '', $toPath = '', $toMethodArg = [])
    {
        foreach ($this->persistent as $key => $h) {
            if ($h['FROM'] === strtoupper($fromModuleId) && $h['TYPE'] === strtoupper($eventType)
                && $h['TO_MODULE'] === $toModuleId && $h['CLASS'] === $toClass && $h['METHOD'] === $toMethod) {
                unset($this->persistent[$key]);
            }
        }
    }

    public function findEventHandlers($eventModuleId, $eventType)
    {
        $found = array_filter($this->persistent, static fn(array $h): bool =>
            $h['FROM'] === strtoupper($eventModuleId) && $h['TYPE'] === strtoupper($eventType)
            && ModuleManager::isModuleInstalled($h['TO_MODULE']));
        uasort($found, static fn(array $a, array $b): int => $a['SORT'] <=> $b['SORT']);
        return array_values($found);
    }

    public function send(Event $event)
    {
        foreach ($this->findEventHandlers($event->getModuleId(), $event->getEventType()) as $h) {
            Loader::includeModule($h['TO_MODULE']);
            if (!class_exists($h['CLASS'])) {
                continue;
            }
            $result = call_user_func([$h['CLASS'], $h['METHOD']], $event);
            if ($result !== null) {
                $event->addResult($result instanceof EventResult ? $result : new EventResult(EventResult::UNDEFINED, $result, $h['TO_MODULE']));
            }
        }
    }
}

/** [B24 main/lib/modulemanager.php]: the installed modules (the kernel: rows of b_module). */
class ModuleManager
{
    /** @var array<string, true> */
    public static array $installed = ['main' => true];

    public static function registerModule($moduleName) { self::$installed[strtolower($moduleName)] = true; }
    public static function unRegisterModule($moduleName) { unset(self::$installed[strtolower($moduleName)]); }
    public static function isModuleInstalled($moduleName) { return isset(self::$installed[strtolower($moduleName)]); }
}

/**
 * [R main/lib/loader.php]: includeModule() is false unless the module is installed; for an id with a
 * dot it registers the PSR-4 root ucwords($id, '.') -> <module>/lib with lowercased file paths, then
 * includes include.php (false from it = not loaded). Kernel modules (sale, currency, highloadblock)
 * are stood in by the other stand-in files, so they only need to be installed.
 */
class Loader
{
    /** @var array<string, string> module id => its folder (local/modules/<id>) */
    public static array $folders = [];
    /** @var array<string, bool> */
    protected static array $loaded = [];

    public static function includeModule($moduleName)
    {
        if (!is_string($moduleName) || $moduleName === '' || preg_match('#[^a-zA-Z0-9._]#', $moduleName)) {
            throw new LoaderException(sprintf("Module name '%s' is not correct.", (string)$moduleName));
        }
        $id = strtolower($moduleName);
        if (!ModuleManager::isModuleInstalled($id)) {
            return false;
        }
        if (isset(self::$loaded[$id])) {
            return self::$loaded[$id];
        }
        $folder = self::$folders[$id] ?? null;
        if ($folder === null) {
            return self::$loaded[$id] = true;
        }
        if (str_contains($id, '.')) {
            $prefix = str_replace('.', '\\', ucwords($id, '.')) . '\\';
            spl_autoload_register(static function (string $class) use ($prefix, $folder): void {
                if (strncasecmp($class, $prefix, strlen($prefix)) === 0) {
                    $rel = str_replace('\\', '/', substr($class, strlen($prefix)));
                    foreach ([strtolower($rel), $rel] as $candidate) {
                        if (is_file($file = $folder . '/lib/' . $candidate . '.php')) {
                            require_once $file;
                            return;
                        }
                    }
                }
            });
        }
        $ok = true;
        if (is_file($folder . '/include.php')) {
            $ok = (include_once $folder . '/include.php') !== false;
        }
        return self::$loaded[$id] = $ok;
    }
}

/** Application::getConnection() [R main/lib/db/connection.php]; the stand-in holds one mysqli connection. */
class Application
{
    protected static ?DB\Connection $connection = null;

    public static function getConnection($name = '')
    {
        return self::$connection;
    }

    /** Not in the kernel: the rig points the stand-in at the test database. */
    public static function setConnection(DB\Connection $connection): void
    {
        self::$connection = $connection;
    }
}

/** [B24 main/lib/httprequest.php]: get($name) reads GET then POST. */
class HttpRequest
{
    public function get($name) { return $_GET[$name] ?? $_POST[$name] ?? null; }
    public function getQuery($name) { return $_GET[$name] ?? null; }
}
